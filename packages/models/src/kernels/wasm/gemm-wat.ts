/**
 * The WebAssembly text of peftkit's float32 GEMM for the WASM backend: C = A · B over tfjs-backend-wasm's own heap
 * (the module imports the backend's memory), any strides, so transposed operands cost nothing extra.
 *
 * The loop nest is BLIS's (Van Zee and van de Geijn, "BLIS: A Framework for Rapidly Instantiating BLAS
 * Functionality", ACM TOMS 41(3), 2015), sized for one core of this machine (32 KiB L1d, 512 KiB L2 per core,
 * 32 MiB L3):
 *
 *   for each block of NC = 1024 columns
 *     for each block of KC = 256 inner indices                   (C accumulates after the first)
 *       pack B's block                                            [NC/8][KC][8], 1 MiB, stays in L3
 *       for each block of MC = 256 rows:   pack A's block         [MC/4][KC][4], 256 KiB, stays in L2
 *         for each panel of 8 columns:                            [KC][8], 8 KiB, comes into L1
 *           for each tile of 4 rows:       the 4 x 8 micro-kernel
 *
 * B's block is packed whole, not a panel at a time: a row-major B is then read four rows at a time along the rows,
 * where a panel alone takes 32 bytes of each of 256 rows. Rows 6 KiB apart (a 1536-wide weight) fall into 2 of
 * L1's 64 sets, so every such read missed: that product ran at 22 GFLOP/s on one thread, its transpose at 36.
 *
 * The micro-kernel keeps the 4 x 8 tile of C in eight 128-bit registers and, for each inner index, loads two
 * vectors of B's panel, broadcasts four values of A's and issues eight multiply-adds. With relaxed SIMD's
 * `f32x4.relaxed_madd` (one fused multiply-add on x86 with FMA3) it ran at 38 to 44 GFLOP/s per thread on the
 * development machine (AMD EPYC, Zen 3), where XNNPACK's WASM SIMD GEMM, which tfjs-backend-wasm 4.22 calls, ran at
 * 19 to 25 (docs/benchmarks.md). Without relaxed SIMD the same loop uses a multiply and an add.
 * Wider tiles (5 x 8, 6 x 8, 3 x 16) and unrolling the inner loop measured slower: V8 spills the accumulators.
 *
 * Partial tiles (rows not a multiple of 4, columns not of 8) are packed with zeros and go through a 4 x 8 scratch
 * tile, so every element of C gets the same sequence of operations: the result does not depend on where a row
 * falls in a tile, nor on how rows are shared between threads.
 *
 * A product of at most {@link FEW_ROWS} rows (a decoding step's) skips the packing where B's layout allows
 * (`fewWat`): it reads each element of the weight once, straight from the heap, which is all such a product
 * costs. GPT-2 small's greedy decoding went from 16 to 20-22 tokens/s against XNNPACK on one thread.
 */

import { memoryImport } from './wasm-module.js';

/** Rows of the micro-kernel's tile. */
export const MR = 4;
/** Columns of the micro-kernel's tile (two 4-lane vectors). */
export const NR = 8;
/** Inner indices per packed block. */
export const KC = 256;
/** Rows per packed block of A. */
export const MC = 256;
/** Columns per packed block of B (a multiple of NR). */
export const NC = 1024;
/**
 * Up to this many rows (a decoding step's), the product skips packing and reads B once where B's layout allows: a
 * weight streamed once per call costs less than packing it. With more rows the packed kernel's reuse wins (a
 * 16-row prompt pass of GPT-2 small's c_fc: 10 ms unpacked).
 */
export const FEW_ROWS = 4;

/** Scratch a thread needs in the heap, in bytes: the packed block of A, the packed block of B, one tile. */
export const SCRATCH_BYTES = { a: MC * KC * 4, b: KC * NC * 4, tile: MR * NR * 4 };

/** i8x16.shuffle's byte lanes picking 32-bit lanes (0-3 of the first operand, 4-7 of the second). */
const lanes = (...l: number[]) => l.flatMap((x) => [4 * x, 4 * x + 1, 4 * x + 2, 4 * x + 3]).join(' ');

/**
 * Stores the transpose of the 4 x 4 block in locals $r0..$r3 (row i = $ri) as 4 vectors, `stride` bytes apart from
 * `dst` (a WAT expression) plus `offset`: vector q = (r0[q], r1[q], r2[q], r3[q]). Uses $t0..$t3.
 */
function transpose4(dst: string, stride: number, offset: number): string {
  return `(local.set $t0 (i8x16.shuffle ${lanes(0, 4, 1, 5)} (local.get $r0) (local.get $r1)))
            (local.set $t1 (i8x16.shuffle ${lanes(0, 4, 1, 5)} (local.get $r2) (local.get $r3)))
            (local.set $t2 (i8x16.shuffle ${lanes(2, 6, 3, 7)} (local.get $r0) (local.get $r1)))
            (local.set $t3 (i8x16.shuffle ${lanes(2, 6, 3, 7)} (local.get $r2) (local.get $r3)))
            (v128.store offset=${offset} ${dst} (i8x16.shuffle ${lanes(0, 1, 4, 5)} (local.get $t0) (local.get $t1)))
            (v128.store offset=${offset + stride} ${dst} (i8x16.shuffle ${lanes(2, 3, 6, 7)} (local.get $t0) (local.get $t1)))
            (v128.store offset=${offset + 2 * stride} ${dst} (i8x16.shuffle ${lanes(0, 1, 4, 5)} (local.get $t2) (local.get $t3)))
            (v128.store offset=${offset + 3 * stride} ${dst} (i8x16.shuffle ${lanes(2, 3, 6, 7)} (local.get $t2) (local.get $t3)))`;
}

/** WAT for min(step, total − start), the size of the block that starts at `start` (locals named by `total` and `start`). */
const upTo = (step: number, total: string, start: string) =>
  `(select (i32.const ${step}) (i32.sub (local.get ${total}) (local.get ${start})) (i32.lt_s (i32.const ${step}) (i32.sub (local.get ${total}) (local.get ${start}))))`;

/** WAT of a fused (relaxed SIMD) or unfused multiply-add of three v128 expressions: a · b + c. */
const maddOf = (fma: boolean) => (a: string, b: string, c: string) => (fma ? `(f32x4.relaxed_madd ${a} ${b} ${c})` : `(f32x4.add (f32x4.mul ${a} ${b}) ${c})`);

/**
 * WAT of the few-row kernels (see {@link gemmWat}'s `few` path): no packing, each element of B read once.
 *
 * `$fewRowMajor` (B row-major, bcs = 4): for each group of `rows` rows of B (4, then 1 for K's remainder), each
 * vector of 4 columns of those rows is loaded once and applied to every row of A (C[i, j..j+3] += Σ_r A[i, p+r] ·
 * B[p+r, j..j+3], in r's order); the columns past the last multiple of 4 are done the same way one at a time.
 * `$fewTransposed` (B transposed, bks = 4; A's rows contiguous, aks = 4): C[i, j] = Σ_p A[i, p] · B[j, p] as a
 * 4-lane running sum over K's multiples of 4, its lanes added in order, then K's remainder in order; four columns
 * of B at a time, each with its own sum.
 */
function fewWat(madd: (a: string, b: string, c: string) => string): string {
  const zero = '(v128.const i32x4 0 0 0 0)';
  const at = (base: string, stride: string, r: number) => (r === 0 ? base : `(i32.add ${base} (i32.mul ${stride} (i32.const ${r})))`);
  // One group of `rows` rows of B starting at p: all vector columns, then the scalar ones.
  const group = (rows: number) => {
    const R = Array.from({ length: rows }, (_, r) => r);
    return `(local.set $brow (i32.add (local.get $b) (i32.mul (local.get $p) (local.get $bks))))
        (local.set $j (i32.const 0))
        (block $jdone${rows} (loop $cols${rows}
          (br_if $jdone${rows} (i32.ge_s (local.get $j) (local.get $nv)))
          ${R.map((r) => `(local.set $b${r} (v128.load ${at('(i32.add (local.get $brow) (i32.shl (local.get $j) (i32.const 2)))', '(local.get $bks)', r)}))`).join('\n          ')}
          (local.set $i (i32.const 0))
          (block $idone${rows} (loop $rows${rows}
            (br_if $idone${rows} (i32.ge_s (local.get $i) (local.get $M)))
            (local.set $cp (i32.add (i32.add (local.get $c) (i32.mul (local.get $i) (local.get $cs))) (i32.shl (local.get $j) (i32.const 2))))
            (local.set $ap (i32.add (i32.add (local.get $a) (i32.mul (local.get $i) (local.get $ars))) (i32.mul (local.get $p) (local.get $aks))))
            (local.set $v (if (result v128) (local.get $first) (then ${zero}) (else (v128.load (local.get $cp)))))
            ${R.map((r) => `(local.set $v ${madd(`(v128.load32_splat ${at('(local.get $ap)', '(local.get $aks)', r)})`, `(local.get $b${r})`, '(local.get $v)')})`).join('\n            ')}
            (v128.store (local.get $cp) (local.get $v))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br $rows${rows})))
          (local.set $j (i32.add (local.get $j) (i32.const 4)))
          (br $cols${rows})))
        (block $tdone${rows} (loop $tail${rows}
          (br_if $tdone${rows} (i32.ge_s (local.get $j) (local.get $N)))
          (local.set $i (i32.const 0))
          (block $sdone${rows} (loop $srows${rows}
            (br_if $sdone${rows} (i32.ge_s (local.get $i) (local.get $M)))
            (local.set $cp (i32.add (i32.add (local.get $c) (i32.mul (local.get $i) (local.get $cs))) (i32.shl (local.get $j) (i32.const 2))))
            (local.set $ap (i32.add (i32.add (local.get $a) (i32.mul (local.get $i) (local.get $ars))) (i32.mul (local.get $p) (local.get $aks))))
            (local.set $x (if (result f32) (local.get $first) (then (f32.const 0)) (else (f32.load (local.get $cp)))))
            ${R.map((r) => `(local.set $x (f32.add (local.get $x) (f32.mul (f32.load ${at('(local.get $ap)', '(local.get $aks)', r)}) (f32.load ${at('(i32.add (local.get $brow) (i32.shl (local.get $j) (i32.const 2)))', '(local.get $bks)', r)}))))`).join('\n            ')}
            (f32.store (local.get $cp) (local.get $x))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br $srows${rows})))
          (local.set $j (i32.add (local.get $j) (i32.const 1)))
          (br $tail${rows})))
        (local.set $first (i32.const 0))
        (local.set $p (i32.add (local.get $p) (i32.const ${rows})))`;
  };
  // Columns j..j+w-1 of a transposed B against row i of A (w = 4 or 1), stored to C.
  const dots = (w: number) => {
    const Q = Array.from({ length: w }, (_, q) => q);
    const col = (q: number) => `(i32.add (local.get $b) (i32.mul (i32.add (local.get $j) (i32.const ${q})) (local.get $bcs)))`;
    return `${Q.map((q) => `(local.set $s${q} ${zero})`).join(' ')}
          (local.set $p (i32.const 0))
          (block $pdone${w} (loop $inner${w}
            (br_if $pdone${w} (i32.ge_s (local.get $p) (local.get $kv)))
            (local.set $av (v128.load (i32.add (local.get $arow) (i32.shl (local.get $p) (i32.const 2)))))
            ${Q.map((q) => `(local.set $s${q} ${madd('(local.get $av)', `(v128.load (i32.add ${col(q)} (i32.shl (local.get $p) (i32.const 2))))`, `(local.get $s${q})`)})`).join('\n            ')}
            (local.set $p (i32.add (local.get $p) (i32.const 4)))
            (br $inner${w})))
          ${Q.map((q) => `(local.set $x (f32.add (f32.add (f32.add (f32x4.extract_lane 0 (local.get $s${q})) (f32x4.extract_lane 1 (local.get $s${q}))) (f32x4.extract_lane 2 (local.get $s${q}))) (f32x4.extract_lane 3 (local.get $s${q}))))
          (local.set $p (local.get $kv))
          (block $rdone${w}_${q} (loop $rest${w}_${q}
            (br_if $rdone${w}_${q} (i32.ge_s (local.get $p) (local.get $K)))
            (local.set $x (f32.add (local.get $x) (f32.mul (f32.load (i32.add (local.get $arow) (i32.shl (local.get $p) (i32.const 2)))) (f32.load (i32.add ${col(q)} (i32.shl (local.get $p) (i32.const 2)))))))
            (local.set $p (i32.add (local.get $p) (i32.const 1)))
            (br $rest${w}_${q})))
          (f32.store offset=${4 * q} (local.get $cp) (local.get $x))`).join('\n          ')}`;
  };
  const rowsOfA = (w: number) => `(local.set $i (i32.const 0))
        (block $idone${w} (loop $rows${w}
          (br_if $idone${w} (i32.ge_s (local.get $i) (local.get $M)))
          (local.set $arow (i32.add (local.get $a) (i32.mul (local.get $i) (local.get $ars))))
          (local.set $cp (i32.add (i32.add (local.get $c) (i32.mul (local.get $i) (local.get $cs))) (i32.shl (local.get $j) (i32.const 2))))
          ${dots(w)}
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br $rows${w})))`;
  return `
  ;; C[M, N] = A[M, K] · B[K, N] for a row-major B (bcs = 4), B read once; C overwritten. K > 0.
  (func $fewRowMajor (param $a i32) (param $ars i32) (param $aks i32) (param $b i32) (param $bks i32) (param $c i32) (param $cs i32) (param $M i32) (param $N i32) (param $K i32)
    (local $p i32) (local $j i32) (local $i i32) (local $nv i32) (local $first i32) (local $brow i32) (local $ap i32) (local $cp i32)
    (local $b0 v128) (local $b1 v128) (local $b2 v128) (local $b3 v128) (local $v v128) (local $x f32)
    (local.set $nv (i32.and (local.get $N) (i32.const -4)))
    (local.set $first (i32.const 1))
    (block $gdone (loop $groups
      (br_if $gdone (i32.gt_s (i32.add (local.get $p) (i32.const 4)) (local.get $K)))
      ${group(4)}
      (br $groups)))
    (block $odone (loop $ones
      (br_if $odone (i32.ge_s (local.get $p) (local.get $K)))
      ${group(1)}
      (br $ones))))

  ;; C[M, N] = A[M, K] · B[K, N] for a transposed B (bks = 4) and contiguous rows of A (aks = 4); C overwritten.
  (func $fewTransposed (param $a i32) (param $ars i32) (param $b i32) (param $bcs i32) (param $c i32) (param $cs i32) (param $M i32) (param $N i32) (param $K i32)
    (local $j i32) (local $i i32) (local $p i32) (local $kv i32) (local $arow i32) (local $cp i32) (local $av v128)
    (local $s0 v128) (local $s1 v128) (local $s2 v128) (local $s3 v128) (local $x f32)
    (local.set $kv (i32.and (local.get $K) (i32.const -4)))
    (block $jdone (loop $quads
      (br_if $jdone (i32.gt_s (i32.add (local.get $j) (i32.const 4)) (local.get $N)))
      ${rowsOfA(4)}
      (local.set $j (i32.add (local.get $j) (i32.const 4)))
      (br $quads)))
    (block $sdone (loop $singles
      (br_if $sdone (i32.ge_s (local.get $j) (local.get $N)))
      ${rowsOfA(1)}
      (local.set $j (i32.add (local.get $j) (i32.const 1)))
      (br $singles))))`;
}

/** Options of {@link gemmWat}. */
export interface GemmWatOptions {
  /** The backend's memory is shared (the threaded build): the import must say so. */
  shared: boolean;
  /** Use relaxed SIMD's fused multiply-add (needs the engine's relaxed-SIMD support); else multiply then add. */
  fma: boolean;
}

/**
 * The module's text. Its one export:
 *
 * `gemm(a, ars, aks, b, bks, bcs, c, cs, M, N, K, batch, sa, sb, sc, pa, pb, tile)`: for each of `batch` slices,
 * C[M, N] = A[M, K] · B[K, N], where (all in bytes) A's element (i, p) is at `a + i·ars + p·aks`, B's (p, j) at
 * `b + p·bks + j·bcs`, C's (i, j) at `c + i·cs + j·4`; slice s adds s·sa, s·sb, s·sc (0 broadcasts an operand).
 * `pa`, `pb` and `tile` are the caller's scratch ({@link SCRATCH_BYTES}), 16-byte aligned. K > 0 (C is not written
 * when K is 0). Up to FEW_ROWS rows with a row-major B (bcs = 4), or a transposed B (bks = 4) and A's rows
 * contiguous (aks = 4), run unpacked; all else through the packed loop nest.
 */
export function gemmWat({ shared, fma }: GemmWatOptions): string {
  const maddX = maddOf(fma);
  const madd = (a: string, b: string, c: string) => maddX(`(local.get ${a})`, `(local.get ${b})`, `(local.get ${c})`);
  const rows = [0, 1, 2, 3];
  const kernel = `
  ;; C[4, 8] (+)= Ap · Bp: Ap is [kc][4] (a packed tile of A), Bp is [kc][8] (a packed panel of B); C's rows cs bytes apart.
  (func $kernel (param $ap i32) (param $bp i32) (param $c i32) (param $cs i32) (param $kc i32) (param $acc i32)
    ${rows.map((i) => `(local $c${i}0 v128) (local $c${i}1 v128) (local $a${i} v128)`).join(' ')}
    (local $b0 v128) (local $b1 v128)
    (block $done (loop $k
      (br_if $done (i32.eqz (local.get $kc)))
      (local.set $b0 (v128.load offset=0 (local.get $bp)))
      (local.set $b1 (v128.load offset=16 (local.get $bp)))
      ${rows.map((i) => `(local.set $a${i} (v128.load32_splat offset=${4 * i} (local.get $ap)))
      (local.set $c${i}0 ${madd(`$a${i}`, '$b0', `$c${i}0`)})
      (local.set $c${i}1 ${madd(`$a${i}`, '$b1', `$c${i}1`)})`).join('\n      ')}
      (local.set $ap (i32.add (local.get $ap) (i32.const 16)))
      (local.set $bp (i32.add (local.get $bp) (i32.const 32)))
      (local.set $kc (i32.sub (local.get $kc) (i32.const 1)))
      (br $k)))
    ${rows.map((i) => `(if (local.get $acc) (then
      (local.set $c${i}0 (f32x4.add (local.get $c${i}0) (v128.load offset=0 (local.get $c))))
      (local.set $c${i}1 (f32x4.add (local.get $c${i}1) (v128.load offset=16 (local.get $c))))))
    (v128.store offset=0 (local.get $c) (local.get $c${i}0))
    (v128.store offset=16 (local.get $c) (local.get $c${i}1))
    (local.set $c (i32.add (local.get $c) (local.get $cs)))`).join('\n    ')})`;

  return `(module
  ${memoryImport(shared)}
${kernel}
${fewWat(maddX)}

  ;; dst[i] = i < valid ? the float at src + i·stride : 0 for i < count (a packed row's edge, element by element);
  ;; returns dst + 4·count.
  (func $gather (param $src i32) (param $stride i32) (param $count i32) (param $valid i32) (param $dst i32) (result i32)
    (local $i i32)
    (block $done (loop $each
      (br_if $done (i32.ge_s (local.get $i) (local.get $count)))
      (f32.store (local.get $dst)
        (if (result f32) (i32.lt_s (local.get $i) (local.get $valid))
          (then (f32.load (i32.add (local.get $src) (i32.mul (local.get $i) (local.get $stride)))))
          (else (f32.const 0))))
      (local.set $dst (i32.add (local.get $dst) (i32.const 4)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $each)))
    (local.get $dst))

  ;; Packs rows [0, rows) x inner indices [0, kc) of A (element (i, p) at a + i·ars + p·aks) as tiles [rows/4][kc][4],
  ;; the last tile's missing rows as zeros. Whole tiles move as vectors: 4 contiguous rows (a transposed A, ars = 4)
  ;; one vector per index; contiguous indices (aks = 4) four at a time through a 4 x 4 transpose.
  (func $packA (param $a i32) (param $ars i32) (param $aks i32) (param $rows i32) (param $kc i32) (param $dst i32)
    (local $t i32) (local $p i32) (local $src i32) (local $full i32)
    (local $r0 v128) (local $r1 v128) (local $r2 v128) (local $r3 v128) (local $t0 v128) (local $t1 v128) (local $t2 v128) (local $t3 v128)
    (local.set $t (i32.const 0))
    (block $tdone (loop $tiles
      (br_if $tdone (i32.ge_s (local.get $t) (local.get $rows)))
      (local.set $p (i32.const 0))
      (local.set $full (i32.le_s (i32.add (local.get $t) (i32.const 4)) (local.get $rows)))
      (if (i32.and (local.get $full) (i32.eq (local.get $ars) (i32.const 4)))
        (then
          (local.set $src (i32.add (local.get $a) (i32.shl (local.get $t) (i32.const 2))))
          (block $vdone (loop $vec
            (br_if $vdone (i32.ge_s (local.get $p) (local.get $kc)))
            (v128.store (local.get $dst) (v128.load (local.get $src)))
            (local.set $src (i32.add (local.get $src) (local.get $aks)))
            (local.set $dst (i32.add (local.get $dst) (i32.const 16)))
            (local.set $p (i32.add (local.get $p) (i32.const 1)))
            (br $vec)))))
      (if (i32.and (local.get $full) (i32.eq (local.get $aks) (i32.const 4)))
        (then
          (local.set $src (i32.add (local.get $a) (i32.mul (local.get $t) (local.get $ars))))
          (block $qdone (loop $quad
            (br_if $qdone (i32.gt_s (i32.add (local.get $p) (i32.const 4)) (local.get $kc)))
            (local.set $r0 (v128.load (local.get $src)))
            (local.set $r1 (v128.load (i32.add (local.get $src) (local.get $ars))))
            (local.set $r2 (v128.load (i32.add (local.get $src) (i32.shl (local.get $ars) (i32.const 1)))))
            (local.set $r3 (v128.load (i32.add (local.get $src) (i32.mul (local.get $ars) (i32.const 3)))))
            ${transpose4('(local.get $dst)', 16, 0)}
            (local.set $src (i32.add (local.get $src) (i32.const 16)))
            (local.set $dst (i32.add (local.get $dst) (i32.const 64)))
            (local.set $p (i32.add (local.get $p) (i32.const 4)))
            (br $quad)))))
      ;; the rest one element at a time
      (block $pdone (loop $inner
        (br_if $pdone (i32.ge_s (local.get $p) (local.get $kc)))
        (local.set $src (i32.add (local.get $a) (i32.add (i32.mul (local.get $t) (local.get $ars)) (i32.mul (local.get $p) (local.get $aks)))))
        (local.set $dst (call $gather (local.get $src) (local.get $ars) (i32.const 4) (i32.sub (local.get $rows) (local.get $t)) (local.get $dst)))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br $inner)))
      (local.set $t (i32.add (local.get $t) (i32.const 4)))
      (br $tiles))))

  ;; Packs inner indices [0, kc) x columns [0, cols) of B (element (p, j) at b + p·bks + j·bcs) as [kc][8], missing
  ;; columns as zeros. A full panel of contiguous indices (a transposed B, bks = 4) moves four indices at a time
  ;; through two 4 x 4 transposes; a row-major B's full panels go through $packBRows instead.
  (func $packB (param $b i32) (param $bks i32) (param $bcs i32) (param $kc i32) (param $cols i32) (param $dst i32)
    (local $p i32) (local $src i32) (local $h i32)
    (local $r0 v128) (local $r1 v128) (local $r2 v128) (local $r3 v128) (local $t0 v128) (local $t1 v128) (local $t2 v128) (local $t3 v128)
    (local.set $p (i32.const 0))
    (if (i32.and (i32.eq (local.get $bks) (i32.const 4)) (i32.eq (local.get $cols) (i32.const 8)))
      (then
        (block $qdone (loop $quad
          (br_if $qdone (i32.gt_s (i32.add (local.get $p) (i32.const 4)) (local.get $kc)))
          ;; columns 0-3, then 4-7 (h = 0, 1): rows j of the stored Bᵀ hold B(p..p+3, j)
          (local.set $h (i32.const 0))
          (block $hdone (loop $half
            (br_if $hdone (i32.eq (local.get $h) (i32.const 2)))
            (local.set $src (i32.add (i32.add (local.get $b) (i32.shl (local.get $p) (i32.const 2))) (i32.mul (i32.shl (local.get $h) (i32.const 2)) (local.get $bcs))))
            (local.set $r0 (v128.load (local.get $src)))
            (local.set $r1 (v128.load (i32.add (local.get $src) (local.get $bcs))))
            (local.set $r2 (v128.load (i32.add (local.get $src) (i32.shl (local.get $bcs) (i32.const 1)))))
            (local.set $r3 (v128.load (i32.add (local.get $src) (i32.mul (local.get $bcs) (i32.const 3)))))
            ${transpose4('(i32.add (local.get $dst) (i32.shl (local.get $h) (i32.const 4)))', 32, 0)}
            (local.set $h (i32.add (local.get $h) (i32.const 1)))
            (br $half)))
          (local.set $dst (i32.add (local.get $dst) (i32.const 128)))
          (local.set $p (i32.add (local.get $p) (i32.const 4)))
          (br $quad)))))
    ;; the rest one element at a time
    (block $pdone (loop $inner
      (br_if $pdone (i32.ge_s (local.get $p) (local.get $kc)))
      (local.set $src (i32.add (local.get $b) (i32.mul (local.get $p) (local.get $bks))))
      (local.set $dst (call $gather (local.get $src) (local.get $bcs) (i32.const 8) (local.get $cols) (local.get $dst)))
      (local.set $p (i32.add (local.get $p) (i32.const 1)))
      (br $inner))))

  ;; Packs the full panels (8 contiguous columns each) of a row-major B's block, rows [0, kc) x columns [0, 8·panels)
  ;; (row p at b + p·bks), as [panels][kc][8]: four rows at a time, each read along its length.
  (func $packBRows (param $b i32) (param $bks i32) (param $kc i32) (param $panels i32) (param $dst i32)
    (local $p i32) (local $q i32) (local $src i32) (local $d i32) (local $step i32)
    (local.set $step (i32.shl (local.get $kc) (i32.const 5)))
    (block $pdone (loop $groups
      (br_if $pdone (i32.ge_s (local.get $p) (local.get $kc)))
      (local.set $src (i32.add (local.get $b) (i32.mul (local.get $p) (local.get $bks))))
      (local.set $d (i32.add (local.get $dst) (i32.shl (local.get $p) (i32.const 5))))
      (local.set $q (local.get $panels))
      (if (i32.le_s (i32.add (local.get $p) (i32.const 4)) (local.get $kc))
        (then
          (block $qdone (loop $four
            (br_if $qdone (i32.eqz (local.get $q)))
            ${[0, 1, 2, 3].map((r) => {
              const row = r === 0 ? '(local.get $src)' : `(i32.add (local.get $src) (i32.mul (local.get $bks) (i32.const ${r})))`;
              return `(v128.store offset=${32 * r} (local.get $d) (v128.load offset=0 ${row}))
            (v128.store offset=${32 * r + 16} (local.get $d) (v128.load offset=16 ${row}))`;
            }).join('\n            ')}
            (local.set $src (i32.add (local.get $src) (i32.const 32)))
            (local.set $d (i32.add (local.get $d) (local.get $step)))
            (local.set $q (i32.sub (local.get $q) (i32.const 1)))
            (br $four)))
          (local.set $p (i32.add (local.get $p) (i32.const 4))))
        (else
          (block $odone (loop $one
            (br_if $odone (i32.eqz (local.get $q)))
            (v128.store offset=0 (local.get $d) (v128.load offset=0 (local.get $src)))
            (v128.store offset=16 (local.get $d) (v128.load offset=16 (local.get $src)))
            (local.set $src (i32.add (local.get $src) (i32.const 32)))
            (local.set $d (i32.add (local.get $d) (local.get $step)))
            (local.set $q (i32.sub (local.get $q) (i32.const 1)))
            (br $one)))
          (local.set $p (i32.add (local.get $p) (i32.const 1)))))
      (br $groups))))

  ;; Packs B's block, inner indices [0, kc) x columns [0, cols), as [ceil(cols/8)][kc][8] (see $packB for a panel);
  ;; a row-major B's full panels all at once through $packBRows.
  (func $packBBlock (param $b i32) (param $bks i32) (param $bcs i32) (param $kc i32) (param $cols i32) (param $dst i32)
    (local $j i32)
    (if (i32.eq (local.get $bcs) (i32.const 4))
      (then
        (local.set $j (i32.and (local.get $cols) (i32.const -8)))
        (call $packBRows (local.get $b) (local.get $bks) (local.get $kc) (i32.shr_s (local.get $j) (i32.const 3)) (local.get $dst))))
    (block $done (loop $panels
      (br_if $done (i32.ge_s (local.get $j) (local.get $cols)))
      (call $packB (i32.add (local.get $b) (i32.mul (local.get $j) (local.get $bcs))) (local.get $bks) (local.get $bcs) (local.get $kc)
        ${upTo(8, '$cols', '$j')} (i32.add (local.get $dst) (i32.mul (i32.shr_s (local.get $j) (i32.const 3)) (i32.shl (local.get $kc) (i32.const 5)))))
      (local.set $j (i32.add (local.get $j) (i32.const 8)))
      (br $panels))))

  ;; A partial tile (r < 4 rows or cols < 8 columns of C at c, rows cs bytes apart) through the scratch tile: C's
  ;; valid part (when accumulating) or zeros in, the micro-kernel accumulating onto it, the valid part out.
  (func $edge (param $ap i32) (param $bp i32) (param $c i32) (param $cs i32) (param $kc i32) (param $acc i32) (param $r i32) (param $cols i32) (param $tile i32)
    (local $i i32) (local $j i32) (local $at i32)
    (local.set $i (i32.const 0))
    (block $idone (loop $rowsIn
      (br_if $idone (i32.eq (local.get $i) (i32.const 4)))
      (local.set $j (i32.const 0))
      (block $jdone (loop $colsIn
        (br_if $jdone (i32.eq (local.get $j) (i32.const 8)))
        (local.set $at (i32.add (local.get $c) (i32.add (i32.mul (local.get $i) (local.get $cs)) (i32.shl (local.get $j) (i32.const 2)))))
        (f32.store (i32.add (local.get $tile) (i32.shl (i32.add (i32.shl (local.get $i) (i32.const 3)) (local.get $j)) (i32.const 2)))
          (if (result f32) (i32.and (local.get $acc) (i32.and (i32.lt_s (local.get $i) (local.get $r)) (i32.lt_s (local.get $j) (local.get $cols))))
            (then (f32.load (local.get $at)))
            (else (f32.const 0))))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br $colsIn)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $rowsIn)))
    (call $kernel (local.get $ap) (local.get $bp) (local.get $tile) (i32.const 32) (local.get $kc) (i32.const 1))
    (local.set $i (i32.const 0))
    (block $odone (loop $rowsOut
      (br_if $odone (i32.ge_s (local.get $i) (local.get $r)))
      (local.set $j (i32.const 0))
      (block $jdone2 (loop $colsOut
        (br_if $jdone2 (i32.ge_s (local.get $j) (local.get $cols)))
        (f32.store (i32.add (local.get $c) (i32.add (i32.mul (local.get $i) (local.get $cs)) (i32.shl (local.get $j) (i32.const 2))))
          (f32.load (i32.add (local.get $tile) (i32.shl (i32.add (i32.shl (local.get $i) (i32.const 3)) (local.get $j)) (i32.const 2)))))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br $colsOut)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $rowsOut))))

  ;; One slice: C[M, N] = A[M, K] · B[K, N].
  (func $slice (param $a i32) (param $ars i32) (param $aks i32) (param $b i32) (param $bks i32) (param $bcs i32) (param $c i32) (param $cs i32) (param $M i32) (param $N i32) (param $K i32) (param $pa i32) (param $pb i32) (param $tile i32)
    (local $n0 i32) (local $nc i32) (local $k0 i32) (local $kc i32) (local $acc i32) (local $i0 i32) (local $rows i32) (local $j0 i32) (local $cols i32) (local $t i32) (local $r i32) (local $cp i32) (local $ap i32) (local $bp i32)
    (local.set $n0 (i32.const 0))
    (block $ndone (loop $nblocks
      (br_if $ndone (i32.ge_s (local.get $n0) (local.get $N)))
      (local.set $nc ${upTo(NC, '$N', '$n0')})
      (local.set $k0 (i32.const 0))
      (block $kdone (loop $kblocks
        (br_if $kdone (i32.ge_s (local.get $k0) (local.get $K)))
        (local.set $kc ${upTo(KC, '$K', '$k0')})
        (local.set $acc (i32.gt_s (local.get $k0) (i32.const 0)))
        (call $packBBlock
          (i32.add (local.get $b) (i32.add (i32.mul (local.get $k0) (local.get $bks)) (i32.mul (local.get $n0) (local.get $bcs))))
          (local.get $bks) (local.get $bcs) (local.get $kc) (local.get $nc) (local.get $pb))
        (local.set $i0 (i32.const 0))
        (block $idone (loop $iblocks
          (br_if $idone (i32.ge_s (local.get $i0) (local.get $M)))
          (local.set $rows ${upTo(MC, '$M', '$i0')})
          (call $packA
            (i32.add (local.get $a) (i32.add (i32.mul (local.get $i0) (local.get $ars)) (i32.mul (local.get $k0) (local.get $aks))))
            (local.get $ars) (local.get $aks) (local.get $rows) (local.get $kc) (local.get $pa))
          (local.set $j0 (i32.const 0))
          (local.set $bp (local.get $pb))
          (block $jdone (loop $panels
            (br_if $jdone (i32.ge_s (local.get $j0) (local.get $nc)))
            (local.set $cols ${upTo(8, '$nc', '$j0')})
            (local.set $t (i32.const 0))
            (block $tdone (loop $tiles
              (br_if $tdone (i32.ge_s (local.get $t) (local.get $rows)))
              (local.set $r ${upTo(4, '$rows', '$t')})
              (local.set $cp (i32.add (local.get $c) (i32.add (i32.mul (i32.add (local.get $i0) (local.get $t)) (local.get $cs)) (i32.shl (i32.add (local.get $n0) (local.get $j0)) (i32.const 2)))))
              (local.set $ap (i32.add (local.get $pa) (i32.mul (local.get $t) (i32.shl (local.get $kc) (i32.const 2)))))
              (if (i32.and (i32.eq (local.get $r) (i32.const 4)) (i32.eq (local.get $cols) (i32.const 8)))
                (then (call $kernel (local.get $ap) (local.get $bp) (local.get $cp) (local.get $cs) (local.get $kc) (local.get $acc)))
                (else (call $edge (local.get $ap) (local.get $bp) (local.get $cp) (local.get $cs) (local.get $kc) (local.get $acc) (local.get $r) (local.get $cols) (local.get $tile))))
              (local.set $t (i32.add (local.get $t) (i32.const 4)))
              (br $tiles)))
            (local.set $j0 (i32.add (local.get $j0) (i32.const 8)))
            (local.set $bp (i32.add (local.get $bp) (i32.shl (local.get $kc) (i32.const 5))))
            (br $panels)))
          (local.set $i0 (i32.add (local.get $i0) (i32.const ${MC})))
          (br $iblocks)))
        (local.set $k0 (i32.add (local.get $k0) (i32.const ${KC})))
        (br $kblocks)))
      (local.set $n0 (i32.add (local.get $n0) (i32.const ${NC})))
      (br $nblocks))))

  (func (export "gemm") (param $a i32) (param $ars i32) (param $aks i32) (param $b i32) (param $bks i32) (param $bcs i32) (param $c i32) (param $cs i32) (param $M i32) (param $N i32) (param $K i32) (param $batch i32) (param $sa i32) (param $sb i32) (param $sc i32) (param $pa i32) (param $pb i32) (param $tile i32)
    (block $done (loop $slices
      (br_if $done (i32.le_s (local.get $batch) (i32.const 0)))
      (if (i32.and (i32.le_s (local.get $M) (i32.const ${FEW_ROWS})) (i32.eq (local.get $bcs) (i32.const 4)))
        (then (call $fewRowMajor (local.get $a) (local.get $ars) (local.get $aks) (local.get $b) (local.get $bks) (local.get $c) (local.get $cs) (local.get $M) (local.get $N) (local.get $K)))
        (else (if (i32.and (i32.le_s (local.get $M) (i32.const ${FEW_ROWS})) (i32.and (i32.eq (local.get $bks) (i32.const 4)) (i32.eq (local.get $aks) (i32.const 4))))
          (then (call $fewTransposed (local.get $a) (local.get $ars) (local.get $b) (local.get $bcs) (local.get $c) (local.get $cs) (local.get $M) (local.get $N) (local.get $K)))
          (else (call $slice (local.get $a) (local.get $ars) (local.get $aks) (local.get $b) (local.get $bks) (local.get $bcs) (local.get $c) (local.get $cs) (local.get $M) (local.get $N) (local.get $K) (local.get $pa) (local.get $pb) (local.get $tile))))))
      (local.set $a (i32.add (local.get $a) (local.get $sa)))
      (local.set $b (i32.add (local.get $b) (local.get $sb)))
      (local.set $c (i32.add (local.get $c) (local.get $sc)))
      (local.set $batch (i32.sub (local.get $batch) (i32.const 1)))
      (br $slices))))
)`;
}
