import cliProgress from 'cli-progress';
import type { StepLogger } from '@peftkit/core';

/** One update's figures for the progress display. */
export interface ProgressFigures {
  step: number;
  /** The loss to show: the trainer reads it only at logging steps and passes the last read one (or none yet) between them. */
  loss: number | undefined;
  lr: number;
  tokensPerSecond: number;
}

/**
 * Training progress: a cli-progress bar (step/total, loss, learning rate, tokens/s, ETA) when
 * stdout is a terminal; otherwise one log line every `loggingSteps` updates.
 */
export class TrainProgress {
  private bar?: cliProgress.SingleBar;
  constructor(
    readonly total: number,
    readonly loggingSteps: number,
    readonly logger: StepLogger,
    start: number,
    tty = !!process.stdout.isTTY,
  ) {
    if (tty) {
      this.bar = new cliProgress.SingleBar(
        { format: 'train |{bar}| {value}/{total} | loss {loss} | lr {lr} | {tps} tok/s | ETA {eta_formatted}', hideCursor: true, etaBuffer: 20 },
        cliProgress.Presets.shades_classic,
      );
      this.bar.start(total, start, { loss: '-', lr: '-', tps: '-' });
    }
  }

  /** Shows an update (the bar) or logs it (every `loggingSteps` updates, and the last one). */
  update(f: ProgressFigures): void {
    const loss = f.loss === undefined ? '-' : f.loss.toFixed(4);
    const lr = f.lr.toExponential(2);
    const tps = f.tokensPerSecond.toFixed(0);
    if (this.bar) this.bar.update(f.step, { loss, lr, tps });
    else if (f.step % this.loggingSteps === 0 || f.step === this.total) this.logger.info(`step ${f.step}/${this.total} loss ${loss} lr ${lr} ${tps} tok/s`);
  }

  /** A message that must not be garbled by the bar. */
  log(message: string): void {
    if (this.bar) {
      this.bar.stop();
      this.logger.info(message);
      const v = this.bar.getProgress() * this.total;
      this.bar.start(this.total, Math.round(v));
    } else this.logger.info(message);
  }

  stop(): void {
    this.bar?.stop();
    this.bar = undefined;
  }
}
