/*
 * lmkit native ABI: one header for liblmkit_cpu.so and liblmkit_cuda.so.
 *
 * Rules (see DESIGN.md):
 *  - every entry point returns int32_t status: LK_OK (0) or an LK_E* code;
 *    lk_last_error() copies the message of the calling thread's last failure;
 *  - arguments are caller-owned typed-array buffers and int32_t / double scalars only;
 *    element counts travel as double (exact up to 2^53) so that the C side can check every
 *    buffer against the shape it is told before touching memory;
 *  - nothing exits or prints; GPU memory lives inside the CUDA library behind int32 handles.
 * Matrices are row-major. A "len" argument is the number of elements of the buffer before it.
 */
#ifndef LMKIT_H
#define LMKIT_H
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LK_ABI_VERSION 1

#define LK_OK 0
#define LK_ESHAPE 1     /* a dimension or buffer length does not fit the operation */
#define LK_EARG 2       /* an argument is out of range */
#define LK_ENUMERICAL 3 /* NaN in input, not positive definite, ... */
#define LK_EBACKEND 4   /* no device, library missing, launch failure */
#define LK_ENOMEM 5     /* allocation failed */
#define LK_EHANDLE 6    /* unknown or freed device handle */

/* ---- common to both libraries ---- */
int32_t lk_abi_version(int32_t* out, double out_len);
int32_t lk_last_error(char* buf, int32_t cap);
/* JSON object describing the library: {"backend":..., ...} (the cpu library adds its threads, SIMD,
 * BLAS and the process's peak RSS in KiB); NUL-terminated, truncated to cap. */
int32_t lk_info(char* buf, int32_t cap);

/* ---- CPU library ---- */
/* mode 0: the project's own kernels; 1: OpenBLAS/LAPACK when it was found (default). */
int32_t lk_cpu_set_blas(int32_t mode);
/* C[m,n] = A[m,k]·B[k,n] (trans_b = 0) or A[m,k]·B[n,k]ᵀ (trans_b = 1). */
int32_t lk_cpu_matmul_f32(const float* a, double a_len, const float* b, double b_len, float* c,
                          double c_len, int32_t m, int32_t k, int32_t n, int32_t trans_b);
/* H[n,n] = beta·H + alpha·XᵀX for X[rows,n], f32 accumulation (full symmetric result). */
int32_t lk_cpu_gram_f32(const float* x, double x_len, int32_t rows, int32_t n, float* h,
                        double h_len, double alpha, double beta);
/* The same with an f64 H (X is converted to f64 before multiplying). */
int32_t lk_cpu_gram_f64(const float* x, double x_len, int32_t rows, int32_t n, double* h,
                        double h_len, double alpha, double beta);
/* In place: H[n,n] (symmetric, f64) becomes U, the upper Cholesky factor of (H + λI)⁻¹ with
 * λ = percdamp·mean(diag H) (zero diagonal entries are first set to 1, as SparseGPT does).
 * When H + λI is not positive definite the damping is multiplied by 10, up to max_tries tries.
 * info_out[0] = the percdamp that succeeded, info_out[1] = number of zero-diagonal columns. */
int32_t lk_cpu_obs_prepare_f64(double* h, double h_len, int32_t n, double percdamp,
                               int32_t max_tries, double* info_out, double info_len);
/* Y[m,n] = X[m,k]·Wᵀ for a sparse W[n,k] in CSR: row_ptr[n+1] (row_ptr[0] = 0, non-decreasing),
 * col[nnz] 16-bit column indices (< k ≤ 65536), val[nnz]. Indices and lengths are checked. */
int32_t lk_cpu_csr_matmul_f32(const float* x, double x_len, const int32_t* row_ptr,
                              double row_ptr_len, const uint16_t* col, double col_len,
                              const float* val, double val_len, float* y, double y_len, int32_t m,
                              int32_t k, int32_t n);
/* The same with W in row blocks of br (≤ 256) rows, each block's nonzeros sorted by column:
 * blk_ptr[ceil(n/br)+1], col[nnz] (< k ≤ 65536), row[nnz] (row within the block), val[nnz]. */
int32_t lk_cpu_bsc_matmul_f32(const float* x, double x_len, const int32_t* blk_ptr,
                              double blk_ptr_len, const uint16_t* col, double col_len,
                              const uint8_t* row, double row_len, const float* val, double val_len,
                              float* y, double y_len, int32_t m, int32_t k, int32_t n, int32_t br);
/* The same with W as a bitmap: bits[n, ceil(k/8)] (bit c%8 of byte c/8 of row r, least
 * significant first, set where W[r,c] is stored; bits past k zero), row_ptr[n+1] offsets of each
 * row's values in val (row_ptr[r+1] − row_ptr[r] = the row's set bits, checked). W is
 * decompressed panel by panel and multiplied by GEMM (dense FLOPs, compressed storage). */
int32_t lk_cpu_bitmap_matmul_f32(const float* x, double x_len, const uint8_t* bits,
                                 double bits_len, const int32_t* row_ptr, double row_ptr_len,
                                 const float* val, double val_len, float* y, double y_len,
                                 int32_t m, int32_t k, int32_t n);
/* The same with W packed N:M (keep = N, group = M ≤ 16, M divides k): val[n, k/M·N] the kept
 * entries row by row, idx their positions within their group, 2 bits each when M ≤ 4 else 4 bits,
 * least significant first, each row's indices starting on a new byte (positions < M checked;
 * positions should rise within a group, as packing produces them). */
int32_t lk_cpu_nm_matmul_f32(const float* x, double x_len, const uint8_t* idx, double idx_len,
                             const float* val, double val_len, float* y, double y_len, int32_t m,
                             int32_t k, int32_t n, int32_t keep, int32_t group);
/* Y[m,n] = X[m,k]·Ŵᵀ for a GPTQ weight-quantized W (W4A16 / W8A16): Ŵ[o,c] = s·(q[o,c] − z) with
 * s = scales[o·groups + g_idx[c]], z = zeros[o·groups + g_idx[c]] (scales, zeros: n × groups;
 * g_idx[k] in [0, groups), any order: act-order; checked). packed holds the levels row by row:
 * nibble = 1: ⌈k/2⌉ bytes a row, column c in byte c/2, low nibble for even c; nibble = 0: k bytes
 * a row, one level each. Up to a few dozen tokens (8 to 64, by how the scales are found) each row
 * is read once per few tokens, its levels widened in registers (decoding); more tokens go through
 * the own GEMM with W dequantized straight into its packed panels. */
int32_t lk_cpu_quant_matmul_f32(const float* x, double x_len, const uint8_t* packed,
                                double packed_len, const float* scales, double scales_len,
                                const float* zeros, double zeros_len, const int32_t* g_idx,
                                double g_idx_len, float* y, double y_len, int32_t m, int32_t k,
                                int32_t n, int32_t groups, int32_t nibble);
/* Row-wise top-k of X[rows,cols] by value (by_abs = 0) or by magnitude (by_abs = 1).
 * Ties go to the lower column index. Per row, idx gets the k chosen column indices in
 * ascending order, val their (signed) values, thr the k-th largest key (k ≥ 1). */
int32_t lk_cpu_topk_f32(const float* x, double x_len, int32_t rows, int32_t cols, int32_t k,
                        int32_t by_abs, int32_t* idx, double idx_len, float* val, double val_len,
                        float* thr, double thr_len);
/* mask[i,j] = key(X[i,j]) >= thr[i] (key = |x| when by_abs); count[i] = selected in row i. */
int32_t lk_cpu_threshold_f32(const float* x, double x_len, int32_t rows, int32_t cols,
                             const float* thr, double thr_len, int32_t by_abs, uint8_t* mask,
                             double mask_len, int32_t* count, double count_len);

/* Causal grouped-query attention for T new queries at positions start..start+T-1.
 * q: T × (heads·d); k, v: caches kv_heads × cap × d holding positions 0..start+T-1;
 * out: T × (heads·d). Query head h reads key/value head h / (heads / kv_heads); scale 1/√d. */
int32_t lk_cpu_attention_f32(const float* q, double q_len, const float* k, double k_len,
                             const float* v, double v_len, float* out, double out_len, int32_t t,
                             int32_t start, int32_t heads, int32_t kv_heads, int32_t d,
                             int32_t cap);

/* SwiGLU activation: out[i] = silu(gate[i])·up[i] = gate[i]/(1 + e^(−gate[i]))·up[i]. */
int32_t lk_cpu_swiglu_f32(const float* gate, double gate_len, const float* up, double up_len,
                          float* out, double out_len, double n);

/* SparseGPT's column sweep on W[rows,cols] (f64, in place) given U (upper Cholesky factor of
 * H⁻¹, cols × cols): per block of `block` columns a mask (unstructured: w²/U_jj² ≤ the block's
 * ⌊len·sparsity⌋-th smallest over prunable rows; or n zeros in every m columns when n > 0), OBS
 * compensation inside the block, lazy update of the columns after it. mask gets 1 where pruned. */
int32_t lk_cpu_sparsegpt_f64(double* w, double w_len, const double* u, double u_len, int32_t rows,
                             int32_t cols, double sparsity, int32_t n, int32_t m,
                             const uint8_t* prunable, double prunable_len, int32_t block,
                             uint8_t* mask, double mask_len);

/* GPTQ's column sweep on W[rows,cols] (f64, in place, columns already in sweep order) given U
 * (upper Cholesky factor of H⁻¹): each column quantized, its error compensated inside the block
 * of `block` columns and lazily after it. iopt = [bits (2–8), sym, group (0 = one group per row),
 * mse, grid, f16 scales, static groups, block] and optionally qcols: the columns from qcols on
 * are kept (not quantized, level 0) and only receive the error of those before them; dopt = [maxshrink, norm]. Column c uses parameter
 * set col_group[c] (scales/zeros[set·rows + row]): given when static, else found when the sweep
 * reaches a group's first column (c % group == 0) from the row as it stood at the block start.
 * mask (rows×cols, may be empty) keeps weights at 0; levels (u8, rows×cols) receives the levels
 * and W the dequantized values. */
/* QUIK (ffi/cpu/quik.c has the formulas): per-token quantization of X[m,k]'s integer columns
 * (all but the increasing outlier columns idx[nout]) to 4 or 8 bits — signed levels xq (m × kp,
 * kp = kq rounded up to 64, zero padded), scale xs, zero term xz, level sum qs — and the outlier
 * columns copied to xo (m × nout). Non-finite inputs fail. */
int32_t lk_cpu_quik_quantize_f32(const float* x, double x_len, const int32_t* idx, double idx_len,
                                 int8_t* xq, double xq_len, float* xs, double xs_len, float* xz,
                                 double xz_len, int32_t* qs, double qs_len, float* xo,
                                 double xo_len, int32_t m, int32_t k, int32_t nout, int32_t bits);
/* Y[m,n] = acc·xs·ws + xz·ws·wsum + xo·woᵀ with acc = Σ_p xq·(wq − 2^(bits−1)) (int32, written
 * to acc when acc_len > 0): wq n × kq unsigned levels (4-bit: two a byte, low nibble first). */
int32_t lk_cpu_quik_matmul_f32(const int8_t* xq, double xq_len, const float* xs, double xs_len,
                               const float* xz, double xz_len, const int32_t* qs, double qs_len,
                               const float* xo, double xo_len, const uint8_t* wq, double wq_len,
                               const float* ws, double ws_len, const int32_t* wsum,
                               double wsum_len, const float* wo, double wo_len, float* y,
                               double y_len, int32_t* acc, double acc_len, int32_t m, int32_t kq,
                               int32_t nout, int32_t n, int32_t bits);

/* QUIK's symmetric per-row weight scales over the columns with is_int[j] = 1 (max|w|/(2^(b−1) − 1),
 * f16-rounded; with clip the authors' search over 80 shrink factors, error Σ|Q(w) − w|^2.4). */
int32_t lk_cpu_quik_scales_f64(const double* w, double w_len, const uint8_t* is_int,
                               double is_int_len, double* scales, double scales_len,
                               int32_t rows, int32_t cols, int32_t bits, int32_t clip);

int32_t lk_cpu_gptq_f64(double* w, double w_len, const double* u, double u_len, int32_t rows,
                        int32_t cols, const int32_t* iopt, double iopt_len, const double* dopt,
                        double dopt_len, const int32_t* col_group, double col_group_len,
                        double* scales, double scales_len, double* zeros, double zeros_len,
                        const uint8_t* mask, double mask_len, uint8_t* levels, double levels_len);

/* ---- training: the backward of every forward op, and AdamW (CPU) ---- */
/* C[m,n] = op(A)·op(B) + beta·C with op(A) = A[m,k] (trans_a = 0) or A[k,m]ᵀ (trans_a = 1) and
 * op(B) = B[k,n] (trans_b = 0) or B[n,k]ᵀ (trans_b = 1); beta is 0 (overwrite) or 1 (accumulate:
 * the weight gradient dW += dYᵀ·X of a linear layer). */
int32_t lk_cpu_gemm_f32(const float* a, double a_len, const float* b, double b_len, float* c,
                        double c_len, int32_t m, int32_t k, int32_t n, int32_t trans_a,
                        int32_t trans_b, double beta);
/* RMSNorm of each row of X[rows,cols]: rstd[r] = 1/sqrt(mean_i x_ri² + eps) (sum in f64),
 * y_ri = (x_ri·rstd[r])·w_i (HF's order: normalise, round to f32, then scale). eps > 0. */
int32_t lk_cpu_rmsnorm_f32(const float* x, double x_len, const float* w, double w_len, float* y,
                           double y_len, float* rstd, double rstd_len, int32_t rows, int32_t cols,
                           double eps);
/* Its backward, given the forward's rstd: with x̂ = x·rstd and g = dy∘w,
 * dx_r = rstd[r]·(g_r − x̂_r·mean_i(g_ri·x̂_ri)) (overwritten), dw += Σ_r dy_r∘x̂_r (accumulated). */
int32_t lk_cpu_rmsnorm_bwd_f32(const float* dy, double dy_len, const float* x, double x_len,
                               const float* w, double w_len, const float* rstd, double rstd_len,
                               float* dx, double dx_len, float* dw, double dw_len, int32_t rows,
                               int32_t cols);
/* Rotary embedding in place on X[t, heads·d] (HF rotate_half layout: element i pairs with
 * i + d/2 in each head) with cos, sin [t, d/2]: dir = 1 rotates by +angle (forward), dir = −1 by
 * −angle (the transpose: the backward of the forward). d even. */
int32_t lk_cpu_rope_f32(float* x, double x_len, const float* cos, double cos_len, const float* sin,
                        double sin_len, int32_t t, int32_t heads, int32_t d, int32_t dir);
/* Backward of causal GQA attention over one whole sequence of t positions (the forward is
 * lk_cpu_attention_f32 with start = 0, cap = t): q, dout [t, heads·d]; k, v [kv_heads, t, d];
 * dq [t, heads·d], dk, dv [kv_heads, t, d] are overwritten. With P the softmax of q·kᵀ/√d
 * (recomputed), dP = dout·vᵀ, dS = P∘(dP − rowsum(P∘dP)): dq = dS·k/√d, dk = Σ_group dSᵀ·q/√d,
 * dv = Σ_group Pᵀ·dout. */
int32_t lk_cpu_attention_bwd_f32(const float* q, double q_len, const float* k, double k_len,
                                 const float* v, double v_len, const float* dout, double dout_len,
                                 float* dq, double dq_len, float* dk, double dk_len, float* dv,
                                 double dv_len, int32_t t, int32_t heads, int32_t kv_heads,
                                 int32_t d);
/* Backward of out = silu(gate)·up: with s = σ(gate), dgate = dout·up·s·(1 + gate·(1 − s)),
 * dup = dout·gate·s (both overwritten). */
int32_t lk_cpu_swiglu_bwd_f32(const float* gate, double gate_len, const float* up, double up_len,
                              const float* dout, double dout_len, float* dgate, double dgate_len,
                              float* dup, double dup_len, double n);
/* Embedding backward (scatter-add): dtable[ids[i], :] += dh[i, :] for i < t; every id is checked
 * to lie in [0, vocab) before anything is written. */
int32_t lk_cpu_embedding_bwd_f32(const int32_t* ids, double ids_len, const float* dh,
                                 double dh_len, float* dtable, double dtable_len, int32_t t,
                                 int32_t vocab, int32_t d);
/* Softmax cross-entropy of logits[rows, vocab] against targets[rows] (−1: ignored, e.g. padding;
 * others checked in [0, vocab)): loss[r] = logsumexp(logits_r) − logits_r[target] (0 when
 * ignored, f64 sums), dlogits_r = scale·(softmax(logits_r) − onehot(target)) (a zero row when
 * ignored). NaN or ±Inf in a used row fails with LK_ENUMERICAL naming the row. */
int32_t lk_cpu_cross_entropy_f32(const float* logits, double logits_len, const int32_t* targets,
                                 double targets_len, float* loss, double loss_len, float* dlogits,
                                 double dlogits_len, int32_t rows, int32_t vocab, double scale);
/* One AdamW step on n parameters, in place: m = b1·m + (1 − b1)·g; v = b2·v + (1 − b2)·g²;
 * p = p·(1 − lr·wd) − (lr/bc1)·m/(sqrt(v)/sqrt(bc2) + eps), with bc1 = 1 − b1^step and
 * bc2 = 1 − b2^step given by the caller (torch.optim.AdamW's order and grouping). */
int32_t lk_cpu_adamw_f32(float* p, double p_len, const float* g, double g_len, float* m,
                         double m_len, float* v, double v_len, double n, double lr, double b1,
                         double b2, double eps, double wd, double bc1, double bc2);

/* ---- CUDA library ---- */
/* out[0] = number of visible devices (0 when none or no driver). */
int32_t lk_cuda_device_count(int32_t* out, double out_len);
/* Device buffers, named by handles > 0. dtype: 0 = f32, 1 = f64, 2 = i32, 3 = u8, 4 = bf16. */
int32_t lk_cuda_alloc(int32_t dtype, double len, int32_t* handle_out, double handle_len);
int32_t lk_cuda_free(int32_t handle);
int32_t lk_cuda_upload(int32_t handle, const void* host, double bytes);
int32_t lk_cuda_download(int32_t handle, void* host, double bytes);
int32_t lk_cuda_matmul_f32(int32_t a, int32_t b, int32_t c, int32_t m, int32_t k, int32_t n,
                           int32_t trans_b);
int32_t lk_cuda_gram_f32(int32_t x, int32_t rows, int32_t n, int32_t h, double alpha, double beta);
int32_t lk_cuda_gram_f64(int32_t x, int32_t rows, int32_t n, int32_t h, double alpha, double beta);
int32_t lk_cuda_obs_prepare_f64(int32_t h, int32_t n, double percdamp, int32_t max_tries,
                                double* info_out, double info_len);
int32_t lk_cuda_topk_f32(int32_t x, int32_t rows, int32_t cols, int32_t k, int32_t by_abs,
                         int32_t idx, int32_t val, int32_t thr);
int32_t lk_cuda_threshold_f32(int32_t x, int32_t rows, int32_t cols, int32_t thr, int32_t by_abs,
                              int32_t mask, int32_t count);
/* lk_cpu_sparsegpt_f64 on device buffers: w (f64 rows×cols, in place), u (f64 cols×cols),
 * prunable (u8 rows), mask (u8 rows×cols, output); block ≤ 128. */
int32_t lk_cuda_sparsegpt_f64(int32_t w, int32_t u, int32_t rows, int32_t cols, double sparsity,
                              int32_t n, int32_t m, int32_t prunable, int32_t block, int32_t mask);
/* dtype 4 = bf16 (2 bytes). f32 → bf16 or bf16 → f32 between buffers of equal length. */
int32_t lk_cuda_convert(int32_t src, int32_t dst);
/* bf16 C[m,n] = A[m,k]·B[k,n] (trans_b = 0) or A·B[n,k]ᵀ (trans_b = 1), f32 accumulation. */
int32_t lk_cuda_matmul_bf16(int32_t a, int32_t b, int32_t c, int32_t m, int32_t k, int32_t n,
                            int32_t trans_b);
/* A 2:4 sparse bf16 weight W[n,k] (two nonzeros in every 4 consecutive columns; n, k multiples
 * of 32) compressed for the sparse tensor cores through cuSPARSELt (0.6 or later, loaded at run
 * time); id_out[0] names it. Fails with LK_EARG when W is not 2:4. */
int32_t lk_cuda_sp24_create(int32_t w, int32_t n, int32_t k, int32_t* id_out, double id_len);
int32_t lk_cuda_sp24_free(int32_t id);
/* bf16 Y[m,n] = X[m,k]·Wᵀ for a 2:4 weight. */
int32_t lk_cuda_sp24_matmul(int32_t id, int32_t x, int32_t m, int32_t y);
/* on = 1: each new 2:4 plan (one per weight and padded token count) is tuned by
 * cusparseLtMatmulSearch on its first product, once per problem (n, k, padded m, layout): a later
 * weight of the same shape takes the configuration that search chose (read back with
 * cusparseLtMatmulAlgGetAttribute) instead of searching again; 0 (the default): cuSPARSELt's
 * default algorithm. */
int32_t lk_cuda_sp24_set_search(int32_t on);
/* A bitmap weight W[rows,cols] unpacked into bf16 out[rows,cols]: bits (u8, rows × ⌈cols/8⌉, bit
 * q of byte b of a row marks column 8b + q), rowptr (i32, rows + 1 offsets into val), val (bf16,
 * the stored values row by row). A row whose set bits disagree with its rowptr span, or whose
 * span leaves val, fails with LK_EARG (nothing is read outside val). */
int32_t lk_cuda_bitmap_dense_bf16(int32_t bits, int32_t rowptr, int32_t val, int32_t rows,
                                  int32_t cols, int32_t out);
/* The routed Sparse Expansion layer on bf16 X[m,d]: z = X·componentsᵀ (components bf16 [r,d]),
 * labels[t] = argmin_c ‖z_t − zoff − centroid_c‖² (zoff = mean·componentsᵀ, f32 [r]; centroids
 * f32 [e,r]; ties to the lower c) or, with centroids = 0 (no buffer) and r = e, the components
 * being the clusters' score weights, labels[t] = argmax_c z_tc − zoff_c (zoff = minus the score
 * offsets), then per cluster Y[rows] = X[rows]·W_cᵀ, W_c n×d given by
 * form: 0 = the bf16 buffer experts[c]; 1 = the 2:4 weight experts[c]; 2 = the bitmap weight
 * experts[3c], experts[3c+1], experts[3c+2] (bits, rowptr, val as for lk_cuda_bitmap_dense_bf16),
 * unpacked into a scratch just before its product (experts without tokens are not read). */
int32_t lk_cuda_routed_bf16(int32_t x, int32_t m, int32_t d, int32_t components, int32_t r,
                            int32_t zoff, int32_t centroids, int32_t e, const int32_t* experts,
                            double experts_len, int32_t form, int32_t n, int32_t y,
                            int32_t labels);
/* ---- training kernels on device buffers (f32; ids and targets i32), as the cpu ones ---- */
int32_t lk_cuda_gemm_f32(int32_t a, int32_t b, int32_t c, int32_t m, int32_t k, int32_t n,
                         int32_t trans_a, int32_t trans_b, double beta);
int32_t lk_cuda_rmsnorm_f32(int32_t x, int32_t w, int32_t y, int32_t rstd, int32_t rows,
                            int32_t cols, double eps);
int32_t lk_cuda_rmsnorm_bwd_f32(int32_t dy, int32_t x, int32_t w, int32_t rstd, int32_t dx,
                                int32_t dw, int32_t rows, int32_t cols);
int32_t lk_cuda_rope_f32(int32_t x, int32_t cos, int32_t sin, int32_t t, int32_t heads, int32_t d,
                         int32_t dir);
int32_t lk_cuda_attention_bwd_f32(int32_t q, int32_t k, int32_t v, int32_t dout, int32_t dq,
                                  int32_t dk, int32_t dv, int32_t t, int32_t heads,
                                  int32_t kv_heads, int32_t d);
int32_t lk_cuda_swiglu_bwd_f32(int32_t gate, int32_t up, int32_t dout, int32_t dgate, int32_t dup,
                               double n);
/* lk_cpu_quik_quantize_f32 on device buffers (ffi/cuda/quik.cu): x f32 m×k, intcols/outcols
 * i32 (the integer and the outlier columns, each increasing), xq u8 (int8 levels, m × kp), xs, xz
 * f32 m, qs i32 m, xo f32 m×nout. */
int32_t lk_cuda_quik_quantize_f32(int32_t x, int32_t intcols, int32_t outcols, int32_t xq,
                                  int32_t xs, int32_t xz, int32_t qs, int32_t xo, int32_t m,
                                  int32_t k, int32_t nout, int32_t bits);
/* lk_cpu_quik_matmul_f32 on device buffers on the tensor cores (acc: −1 for none); path 0 picks
 * by device (int4 mma for 4-bit layers on sm_80–89, int8 mma otherwise), 4 or 8 forces one. */
int32_t lk_cuda_quik_matmul_f32(int32_t xq, int32_t xs, int32_t xz, int32_t xo, int32_t wq,
                                int32_t ws, int32_t wsum, int32_t wo, int32_t y, int32_t acc,
                                int32_t m, int32_t kq, int32_t nout, int32_t n, int32_t bits,
                                int32_t path);
/* lk_cpu_quant_matmul_f32 on device buffers (ffi/cuda/quant.cu): x (f32 tokens×cols), packed
 * (u8, rows × ⌈cols/2⌉ nibbles or rows × cols bytes), scales and zeros (f32 rows×groups), g_idx
 * (i32 cols, every entry checked to lie in [0, groups)), y (f32 tokens×rows). */
int32_t lk_cuda_quant_matmul_f32(int32_t x, int32_t packed, int32_t scales, int32_t zeros,
                                 int32_t g_idx, int32_t y, int32_t tokens, int32_t cols,
                                 int32_t rows, int32_t groups, int32_t nibble);
int32_t lk_cuda_embedding_bwd_f32(int32_t ids, int32_t dh, int32_t dtable, int32_t t,
                                  int32_t vocab, int32_t d);
int32_t lk_cuda_cross_entropy_f32(int32_t logits, int32_t targets, int32_t loss, int32_t dlogits,
                                  int32_t rows, int32_t vocab, double scale);
int32_t lk_cuda_adamw_f32(int32_t p, int32_t g, int32_t m, int32_t v, double n, double lr,
                          double b1, double b2, double eps, double wd, double bc1, double bc2);
/* Waits for queued work; ms_out[0] = milliseconds since the previous lk_cuda_sync. */
int32_t lk_cuda_sync(double* ms_out, double ms_len);

/* ---- NCCL collectives on device buffers (ffi/cuda/nccl.cu; lib/comm/nccl.ts) ----
 * libnccl.so.2 is loaded at first use: $LMKIT_NCCL when set (only it), else "libnccl.so.2"
 * through the dynamic loader, else PyTorch's nvidia-nccl wheel in the usual Python folders.
 * lk_nccl_library: JSON {"path","version","code"} of the library loaded (LK_EBACKEND, "NCCL
 * could not be loaded: …", when none). One communicator per process and GPU: rank 0 gets the
 * 128-byte unique id, the caller sends it to every rank, each calls lk_nccl_init (blocks until
 * all nranks have joined). agree = 1: every call first checks, with one small all-reduce, that
 * the ranks are at the same call with the same sizes and valid arguments (else it fails on
 * every rank, no data moved). Collectives take a ticket (0, 1, 2, … per communicator; calls run
 * in ticket order, one at a time, from any thread) and an err buffer for their message (they may
 * run on a worker thread). A range is (handle, offset, count) in elements of the buffer's dtype;
 * sums take f32, f64 or bf16 (op 0 sum, 1 prod, 2 max, 3 min, 4 avg). Each call returns when its
 * data is in place. A timeout or an NCCL error aborts the communicator (LK_EBACKEND; it is
 * "broken" in lk_nccl_info and fails every later call). */
int32_t lk_nccl_library(char* buf, int32_t cap);
int32_t lk_nccl_get_unique_id(uint8_t* out, double out_len);
int32_t lk_nccl_init(const uint8_t* id, double id_len, int32_t nranks, int32_t rank, double timeout_s,
                     int32_t agree, int32_t* comm_out, double out_len);
/* out[6]: rank, nranks, broken, closed, agree, the next ticket */
int32_t lk_nccl_info(int32_t comm, double* out, double out_len);
/* in place over [offset, offset + count) */
int32_t lk_nccl_all_reduce(int32_t comm, double ticket, int32_t buf, double offset, double count,
                           int32_t op, char* err, int32_t err_cap);
/* recv (rcount) = this rank's block of the reduction of send (nranks × rcount); in place when
 * recv is this rank's block of send */
int32_t lk_nccl_reduce_scatter(int32_t comm, double ticket, int32_t send, double soff,
                               double scount, int32_t recv, double roff, double rcount, int32_t op,
                               char* err, int32_t err_cap);
/* recv (nranks × scount) = every rank's send, rank j's at block j; in place when send is this
 * rank's block of recv */
int32_t lk_nccl_all_gather(int32_t comm, double ticket, int32_t send, double soff, double scount,
                           int32_t recv, double roff, double rcount, char* err, int32_t err_cap);
/* in place: every rank's range becomes root's */
int32_t lk_nccl_broadcast(int32_t comm, double ticket, int32_t buf, double offset, double count,
                          int32_t root, char* err, int32_t err_cap);
/* scount = rcount = nranks blocks: send block j goes to rank j, recv block j comes from rank j
 * (ncclSend/ncclRecv in one group); send and recv must not overlap */
int32_t lk_nccl_all_to_all(int32_t comm, double ticket, int32_t send, double soff, double scount,
                           int32_t recv, double roff, double rcount, char* err, int32_t err_cap);
int32_t lk_nccl_barrier(int32_t comm, double ticket, char* err, int32_t err_cap);
/* waits for the earlier tickets, then ncclCommDestroy (a broken one was aborted already) */
int32_t lk_nccl_destroy(int32_t comm, double ticket, char* err, int32_t err_cap);

/* ---- bucketed max–min quantization for compressed collectives (QSDP, CGX) ----
 * ffi/cpu/comm_quant.c, ffi/cuda/comm_quant.cu; lib/comm/quantize.ts. n elements (< 2^32) in
 * buckets of `bucket` (the last may be short); bits 1..8; meta_f16 0: per bucket min and unit as
 * f32, 1: as f16 (min rounded down, unit up). The message: every bucket's (min, unit), then the
 * levels packed densely, b bits each, least significant bit first, the last byte zero-padded:
 * ceil(n/bucket)·(8 or 4) + ceil(n·b/8) bytes. stochastic 1: level = min(⌊(x−min)/unit + r⌋,
 * 2^b−1) with r = (H((i + k0) ^ k1) >> 8)·2^-24, H the lowbias32 hash, i the element index,
 * (k0, k1) from the seed (an integer < 2^53); 0: r =
 * 0.5. Non-finite input fails naming the lowest index; all three backends give the same bytes. */
/* out[0] = the message's byte count */
int32_t lk_cpu_cq_bytes(double n, int32_t bits, int32_t bucket, int32_t meta_f16, double* out,
                        double out_len);
/* quantizes x (all x_len elements) into out (at least the message's bytes) */
int32_t lk_cpu_cq_quantize_f32(const float* x, double x_len, int32_t bits, int32_t bucket,
                               int32_t meta_f16, int32_t stochastic, double seed, uint8_t* out,
                               double out_len);
/* out (out_len elements) = (accumulate 0) or += (accumulate 1) the dequantized message */
int32_t lk_cpu_cq_dequantize_f32(const uint8_t* msg, double msg_len, int32_t bits, int32_t bucket,
                                 int32_t meta_f16, int32_t accumulate, float* out,
                                 double out_len);
/* the same on device buffers: x (f32, ≥ n), msg (u8, ≥ the message's bytes), out (f32, ≥ n) */
int32_t lk_cuda_cq_quantize_f32(int32_t x, double n, int32_t bits, int32_t bucket,
                                int32_t meta_f16, int32_t stochastic, double seed, int32_t msg);
int32_t lk_cuda_cq_dequantize_f32(int32_t msg, double n, int32_t bits, int32_t bucket,
                                  int32_t meta_f16, int32_t accumulate, int32_t out);

#ifdef __cplusplus
}
#endif
#endif
