import winston from 'winston';

/**
 * The run's root logger: readable lines on the console (level from `PEFTKIT_LOG_LEVEL`, default
 * `info`), JSON lines in `logFile` when given (always at `debug`). Steps get `logger.child({ step })`.
 */
export function createLogger(logFile?: string): winston.Logger {
  const console = new winston.transports.Console({
    level: process.env.PEFTKIT_LOG_LEVEL ?? 'info',
    format: winston.format.combine(
      // Colour only for a terminal, and never under NO_COLOR (no-color.org).
      ...(process.stdout.isTTY && !process.env.NO_COLOR ? [winston.format.colorize({ level: true })] : []),
      winston.format.printf(({ level, message, step, timestamp, stack, ...rest }) => {
        const meta = Object.keys(rest).length ? ' ' + JSON.stringify(rest) : '';
        return `${String(timestamp).slice(11, 19)} ${level} ${step ? `[${step}] ` : ''}${stack ?? message}${meta}`;
      }),
    ),
  });
  const transports: winston.transport[] = [console];
  if (logFile) transports.push(new winston.transports.File({ filename: logFile, level: 'debug', format: winston.format.json() }));
  return winston.createLogger({
    level: 'debug',
    format: winston.format.combine(winston.format.errors({ stack: true }), winston.format.timestamp()),
    transports,
  });
}
