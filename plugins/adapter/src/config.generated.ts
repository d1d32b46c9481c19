/* Generated from plugins/adapter/src/config.schema.json by tools/typegen. Do not edit: change the schema and run `npm run typegen`. */

/**
 * Bottleneck adapter settings (Houlsby et al. 2019, arXiv:1902.00751, section 2; Pfeiffer et al. 2020, arXiv:2005.00247; He et al. 2021, arXiv:2110.04366), with the field names of AdapterHub's BnConfig (adapters/configuration/adapter_config.py). The defaults shown are the `houlsby` method's (AdapterHub's double_seq_bn); the `pfeiffer` (seq_bn) and `parallel-adapter` (par_bn) methods publish the same schema with their own defaults.
 */
export interface BottleneckAdapterConfig {
  /**
   * Insert an adapter after the multi-head attention block of each layer (on the output of attn.c_proj / self_attn.o_proj / attention.output.dense / attention.out_lin).
   */
  mh_adapter?: boolean;
  /**
   * Insert an adapter after the feed-forward block of each layer (on the output of mlp.c_proj / mlp.down_proj / output.dense / ffn.lin2).
   */
  output_adapter?: boolean;
  /**
   * hidden_size / bottleneck size: the bottleneck has m = floor(hidden_size / reduction_factor) units (at least 1). A number for every layer, or a map from layer index ("0", "1", ...) to a factor with a "default" entry for the layers not listed, e.g. {"0": 8, "default": 16}.
   */
  reduction_factor?:
    | number
    | {
        [k: string]: number;
      };
  /**
   * Activation f between the down- and the up-projection, by transformers' names: swish = silu = x·sigmoid(x); gelu = exact (erf) GELU; gelu_new = tanh approximation; leakyrelu slope 0.01; linear = identity.
   */
  non_linearity?:
    'relu' | 'swish' | 'silu' | 'gelu' | 'gelu_new' | 'gelu_orig' | 'tanh' | 'sigmoid' | 'leakyrelu' | 'linear';
  /**
   * AdapterHub: add the sublayer's residual and apply the model's own LayerNorm before the adapter. peftkit inserts adapters by wrapping the sublayer's output projection and cannot reach that residual and LayerNorm, so only false is supported (the adapter sees the sublayer output, as in Houlsby et al. 2019, figure 2).
   */
  original_ln_before?: boolean;
  /**
   * AdapterHub: apply the model's residual connection and LayerNorm after the adapter. Always the case when the adapter wraps the output projection, so only true is supported.
   */
  original_ln_after?: boolean;
  /**
   * AdapterHub: take the adapter's residual before (true) or after (false) the model's LayerNorm, or after the residual addition ("post_add"). Only matters with original_ln_before = true; kept so that configs round-trip.
   */
  residual_before_ln?: true | false | 'post_add';
  /**
   * AdapterHub: a new LayerNorm before the down-projection. Not supported (must be false).
   */
  ln_before?: boolean;
  /**
   * AdapterHub: a new LayerNorm after the up-projection. Not supported (must be false).
   */
  ln_after?: boolean;
  /**
   * AdapterHub: with ln_after, add the adapter's residual before that LayerNorm. Only matters with ln_after = true; kept so that configs round-trip.
   */
  adapter_residual_before_ln?: boolean;
  /**
   * Initialisation. mam_adapter: down-projection Kaiming-uniform (a = sqrt(5)) with zero bias, up-projection weight and bias zeros, so a fresh adapter leaves the model's outputs exactly unchanged. bert: both weights N(0, 0.02²), biases zeros (AdapterHub's own default; the outputs change slightly from the start). houlsby: both weights truncated N(0, 0.01²) within ±0.02, biases zeros (near-identity, as Houlsby et al. 2019 section 2 ask).
   */
  init_weights?: 'mam_adapter' | 'bert' | 'houlsby';
  /**
   * Parallel adapter (He et al. 2021, section 3): the adapter reads the sublayer's input and its output is added to the sublayer's output, instead of reading the sublayer's output (sequential).
   */
  is_parallel?: boolean;
  /**
   * Factor s on the adapter's output, s · W_up f(W_down h) (He et al. 2021, section 3). A number; "learned": one trained scalar initialised to 1; "channel": one trained factor per hidden unit, initialised to 1.
   */
  scaling?: number | ('learned' | 'channel');
  /**
   * Dropout on the adapter's output (after scaling) during training.
   */
  dropout?: number;
  /**
   * Indices of layers (from 0) that get no adapter.
   */
  leave_out?: number[];
}
