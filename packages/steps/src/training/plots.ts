import * as vega from 'vega';
import * as vl from 'vega-lite';

/** One point of a loss curve. */
export interface LossPoint {
  step: number;
  /** Training loss (nats). */
  loss?: number;
  /** Validation loss (nats). */
  eval_loss?: number;
}

/**
 * The loss curve (training loss per logged step, validation loss where evaluated) as an SVG
 * document: a vega-lite line chart compiled to vega and rendered headless (`renderer: 'none'`).
 */
export async function lossCurveSvg(points: LossPoint[], title = 'loss'): Promise<string> {
  const values = points.flatMap((p) => [
    ...(p.loss !== undefined && Number.isFinite(p.loss) ? [{ step: p.step, loss: p.loss, series: 'train' }] : []),
    ...(p.eval_loss !== undefined && Number.isFinite(p.eval_loss) ? [{ step: p.step, loss: p.eval_loss, series: 'validation' }] : []),
  ]);
  const spec: vl.TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title,
    width: 560,
    height: 280,
    data: { values },
    mark: { type: 'line', point: values.length < 60 },
    encoding: {
      // Steps are whole numbers; losses need 4 significant digits, not vega's default 6 decimals.
      x: { field: 'step', type: 'quantitative', title: 'optimizer step', axis: { format: 'd', tickMinStep: 1 } },
      y: { field: 'loss', type: 'quantitative', title: 'loss (nats per target)', scale: { zero: false }, axis: { format: '.4~g' } },
      color: { field: 'series', type: 'nominal', title: null },
    },
  };
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
