// casl's native convolution kernels for the wasm backend (optional addon).
//
// tfjs-backend-wasm's XNNPACK is limited to 128-bit wasm SIMD; this CPU has
// AVX-512/FMA. These kernels compute on the wasm heap itself (zero copy): JS
// passes the heap (a Uint8Array over the module's ArrayBuffer or
// SharedArrayBuffer) and byte offsets of each tensor, NHWC activations and
// HWIO filters as tfjs stores them.
//
//   conv2d  y[m, co] = act(bias[co] + Σ_{tap, ci} x[pixel(m, tap), ci] · w[tap, ci, co])
//           an indirect GEMM: each output row block of MR pixels gets one
//           input pointer per tap (a zero row where the tap falls in the
//           padding), multiplied into a register tile of MR × NR outputs.
//   conv2d_backprop_filter
//           dW[tap, ci, co] = Σ_m x[pixel(m, tap), ci] · dy[m, co]
//           the contraction runs over output pixels; tiles of MR input
//           channels × NR output channels stay in registers over a chunk of
//           pixels; threads split the (tap, channel panel) pairs, whose
//           outputs are disjoint, so the result does not depend on them.
//
// Vectors are GCC vector extensions, so -march=native picks AVX-512 (16
// lanes), AVX2 (8) or SSE (4) at build time.
#include <node_api.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace {

#if defined(__AVX512F__)
constexpr int VW = 16;
constexpr const char* ISA = "avx512";
#elif defined(__AVX2__)
constexpr int VW = 8;
constexpr const char* ISA = "avx2";
#else
constexpr int VW = 4;
constexpr const char* ISA = "sse";
#endif
// 12 rows × 2 vectors = 24 accumulators, within AVX-512's 32 registers.
constexpr int MR = VW == 16 ? 12 : 6;

typedef float vf __attribute__((vector_size(VW * 4)));
typedef float vfu __attribute__((vector_size(VW * 4), aligned(4)));

inline vf load(const float* p) { return *reinterpret_cast<const vfu*>(p); }
inline void store(float* p, vf v) { *reinterpret_cast<vfu*>(p) = v; }

// ---------------------------------------------------------------- threads
// A persistent fork-join pool. Work is handed out through an atomic counter
// by the callers' loops, so a thread that is descheduled on a loaded machine
// only delays the blocks it already took.
class Pool {
 public:
  void resize(int n) {
    std::lock_guard<std::mutex> busy(busy_);
    n = std::max(1, n);
    if (n == threads_) return;
    stop();
    threads_ = n;
    stopping_ = false;
    for (int i = 1; i < threads_; i++) workers_.emplace_back([this, i, seen = gen_] { loop(i, seen); });
  }
  int size() const { return threads_; }
  // Runs fn(tid) on every thread (tid 0 is the caller) and waits for all.
  // Another JS thread (a worker_threads replica) holding the pool computes on
  // its own thread instead of waiting.
  void run(const std::function<void(int)>& fn, int want) {
    std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
    int n = std::min(want, threads_);
    if (n <= 1 || !busy.owns_lock()) {
      fn(0);
      return;
    }
    {
      std::lock_guard<std::mutex> g(mu_);
      job_ = &fn;
      active_ = n;
      pending_ = n - 1;
      gen_++;
    }
    cv_.notify_all();
    fn(0);
    std::unique_lock<std::mutex> l(mu_);
    done_.wait(l, [this] { return pending_ == 0; });
    job_ = nullptr;
  }
  ~Pool() { stop(); }

 private:
  // `seen`: the job generation at the worker's start, so that it waits for the next job.
  void loop(int id, uint64_t seen) {
    for (;;) {
      const std::function<void(int)>* job;
      {
        std::unique_lock<std::mutex> l(mu_);
        cv_.wait(l, [&] { return stopping_ || gen_ != seen; });
        if (stopping_) return;
        seen = gen_;
        if (id >= active_) continue;
        job = job_;
      }
      (*job)(id);
      {
        std::lock_guard<std::mutex> g(mu_);
        if (--pending_ == 0) done_.notify_one();
      }
    }
  }
  void stop() {
    {
      std::lock_guard<std::mutex> g(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
  }
  std::vector<std::thread> workers_;
  std::mutex busy_, mu_;
  std::condition_variable cv_, done_;
  const std::function<void(int)>* job_ = nullptr;
  uint64_t gen_ = 0;
  int active_ = 0, pending_ = 0, threads_ = 1;
  bool stopping_ = false;
};

Pool pool;

// Calls body(i) for i in [0, n) on up to `want` threads, `grain` indices at a time.
void parallel_for(long n, long grain, int want, const std::function<void(int, long)>& body) {
  std::atomic<long> next{0};
  pool.run([&](int tid) {
    for (;;) {
      long i0 = next.fetch_add(grain);
      if (i0 >= n) return;
      long i1 = std::min(n, i0 + grain);
      for (long i = i0; i < i1; i++) body(tid, i);
    }
  }, want);
}

int threads_for(double flops) {
  // A fork-join costs tens of microseconds; below ~2 MFLOP one thread wins.
  return flops < 2e6 ? 1 : pool.size();
}

// ---------------------------------------------------------------- conv2d
struct ConvShape {
  long b, h, w, cin, kh, kw, cout, oh, ow, sh, sw, dh, dw, pt, pl;
};

// One MR × NV·VW tile over all taps: a[t·MR + i] is row i's input pixel for tap t.
// B rows are `ldb` floats apart (NV·VW when packed, cout when read in place).
template <int NV>
inline void tile_fwd(const float* const* a, int taps, int kc, const float* bp, long ldb, float* const* c, int nv,
                     const float* bias, bool relu) {
  vf acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; i++)
#pragma GCC unroll 2
    for (int v = 0; v < NV; v++) acc[i][v] = bias ? load(bias + v * VW) : vf{};
  for (int t = 0; t < taps; t++) {
    const float* const* at = a + t * MR;
    for (int k = 0; k < kc; k++) {
      vf b[NV];
#pragma GCC unroll 2
      for (int v = 0; v < NV; v++) b[v] = load(bp + v * VW);
      bp += ldb;
#pragma GCC unroll 16
      for (int i = 0; i < MR; i++) {
        float s = at[i][k];
#pragma GCC unroll 2
        for (int v = 0; v < NV; v++) acc[i][v] += s * b[v];
      }
    }
  }
  if (relu) {
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 2
      for (int v = 0; v < NV; v++) acc[i][v] = acc[i][v] > 0 ? acc[i][v] : vf{};
  }
  if (nv == NV * VW) {
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 2
      for (int v = 0; v < NV; v++) store(c[i] + v * VW, acc[i][v]);
  } else {
    for (int i = 0; i < MR; i++) {
      float tmp[NV * VW];
      for (int v = 0; v < NV; v++) store(tmp + v * VW, acc[i][v]);
      std::memcpy(c[i], tmp, nv * sizeof(float));
    }
  }
}

template <int NV>
void conv2d(const float* x, const float* w, const float* bias, float* y, const ConvShape& s, bool relu) {
  constexpr int NR = NV * VW;
  const int taps = s.kh * s.kw;
  const long K = taps * s.cin;
  const long nb = (s.cout + NR - 1) / NR;
  // HWIO rows are already NR-wide panels side by side when cout is a multiple
  // of NR: read them in place. Otherwise pack [nb][K][NR], zero-padded.
  const bool inPlace = s.cout % NR == 0;
  std::vector<float> packed, pbias(nb * NR, 0.f);
  if (!inPlace) {
    packed.assign(nb * K * NR, 0.f);
    for (long k = 0; k < K; k++)
      for (long co = 0; co < s.cout; co++) packed[((co / NR) * K + k) * NR + co % NR] = w[k * s.cout + co];
  }
  const long ldb = inPlace ? s.cout : NR;
  auto panel = [&](long j) { return inPlace ? w + j * NR : packed.data() + j * K * NR; };
  if (bias) std::copy(bias, bias + s.cout, pbias.begin());
  const long M = s.b * s.oh * s.ow;
  const long blocks = (M + MR - 1) / MR;
  std::vector<float> zero(s.cin, 0.f);
  const int nthreads = threads_for(2.0 * M * K * s.cout);
  std::vector<std::vector<float>> scratch(nthreads, std::vector<float>(NR));
  std::vector<std::vector<const float*>> ptrs(nthreads, std::vector<const float*>(taps * MR));
  // Work items panel-major: consecutive items reuse one filter panel from cache
  // (C5's 3×3×256×256 filter is 2.4 MB; a pixel block per item would stream all of it).
  const long items = blocks * nb;
  parallel_for(items, std::max(1L, items / (8L * nthreads)), nthreads, [&](int tid, long item) {
    const long j = item / blocks, blk = item % blocks;
    const float** a = ptrs[tid].data();
    float* c[MR];
    for (int i = 0; i < MR; i++) {
      long m = blk * MR + i;
      if (m >= M) {
        for (int t = 0; t < taps; t++) a[t * MR + i] = zero.data();
        c[i] = scratch[tid].data();
        continue;
      }
      long ow = m % s.ow, oh = (m / s.ow) % s.oh, n = m / (s.ow * s.oh);
      c[i] = y + m * s.cout + j * NR;
      for (long r = 0; r < s.kh; r++) {
        long ih = oh * s.sh + r * s.dh - s.pt;
        for (long q = 0; q < s.kw; q++) {
          long iw = ow * s.sw + q * s.dw - s.pl;
          bool in = ih >= 0 && ih < s.h && iw >= 0 && iw < s.w;
          a[(r * s.kw + q) * MR + i] = in ? x + ((n * s.h + ih) * s.w + iw) * s.cin : zero.data();
        }
      }
    }
    const int nv = (int)std::min<long>(NR, s.cout - j * NR);
    tile_fwd<NV>(a, taps, (int)s.cin, panel(j), ldb, c, nv, bias ? pbias.data() + j * NR : nullptr, relu);
  });
}

// ---------------------------------------------------------------- dx
// dx[n, ih, iw, ci] = Σ_{kh, kw, co} dy[n, oh, ow, co] · w[kh, kw, ci, co]
//   over the taps with ih = oh·sh + kh − pt and iw = ow·sw + kw − pl.
// Pixels of dx are grouped by phase (ih mod sh, iw mod sw): one phase is
// reached by the same taps (kh ≡ phase + pt mod sh), so each row block runs
// the indirect GEMM over only those taps, with the filter transposed
// (ci as the output columns, co as the contraction); no work goes into the
// zeros of a stride-dilated dy. Dilated backprop is not asked for by tfjs.
template <int NV>
void conv2d_dx(const float* dy, const float* w, float* dx, const ConvShape& s) {
  constexpr int NR = NV * VW;
  const long nb = (s.cin + NR - 1) / NR;
  const long P = s.sh * s.sw;
  // Per phase: its taps, and the filter packed [nb][taps of the phase][cout][NR].
  // A tap (r, q) of phase (py, px) reads dy at (iy + dOh, jx + dOw) for the
  // phase's pixel (iy, jx): the divisions are exact, so made once here.
  std::vector<std::vector<int>> phaseTaps(P);
  std::vector<std::vector<long>> dOh(P), dOw(P);
  for (long ph = 0; ph < P; ph++) {
    long py = ph / s.sw, px = ph % s.sw;
    for (long r = 0; r < s.kh; r++)
      for (long q = 0; q < s.kw; q++)
        if ((py + s.pt - r) % s.sh == 0 && (px + s.pl - q) % s.sw == 0) {
          phaseTaps[ph].push_back((int)(r * s.kw + q));
          dOh[ph].push_back((py + s.pt - r) / s.sh);
          dOw[ph].push_back((px + s.pl - q) / s.sw);
        }
  }
  std::vector<std::vector<float>> packed(P);
  for (long ph = 0; ph < P; ph++) {
    const long T = (long)phaseTaps[ph].size();
    packed[ph].assign(nb * T * s.cout * NR, 0.f);
    for (long t = 0; t < T; t++) {
      const float* wt = w + (long)phaseTaps[ph][t] * s.cin * s.cout;
      for (long ci = 0; ci < s.cin; ci++)
        for (long co = 0; co < s.cout; co++)
          packed[ph][(((ci / NR) * T + t) * s.cout + co) * NR + ci % NR] = wt[ci * s.cout + co];
    }
  }
  // Row blocks never straddle phases: block b of phase ph covers that phase's pixels [b·MR, b·MR + MR).
  std::vector<long> phaseRows(P), firstBlock(P + 1, 0);
  for (long ph = 0; ph < P; ph++) {
    long py = ph / s.sw, px = ph % s.sw;
    long hs = py < s.h ? (s.h - py + s.sh - 1) / s.sh : 0, ws = px < s.w ? (s.w - px + s.sw - 1) / s.sw : 0;
    phaseRows[ph] = s.b * hs * ws;
    firstBlock[ph + 1] = firstBlock[ph] + (phaseRows[ph] + MR - 1) / MR;
  }
  const long blocks = firstBlock[P];
  std::vector<float> zero(s.cout, 0.f);
  const int nthreads = threads_for(2.0 * s.b * s.oh * s.ow * s.kh * s.kw * s.cin * s.cout);
  const long maxTaps = s.kh * s.kw;
  std::vector<std::vector<float>> scratch(nthreads, std::vector<float>(NR));
  std::vector<std::vector<const float*>> ptrs(nthreads, std::vector<const float*>(std::max(1L, maxTaps) * MR));
  parallel_for(blocks, std::max(1L, blocks / (8L * nthreads)), nthreads, [&](int tid, long blk) {
    long ph = std::upper_bound(firstBlock.begin(), firstBlock.end(), blk) - firstBlock.begin() - 1;
    long py = ph / s.sw, px = ph % s.sw;
    long ws = (s.w - px + s.sw - 1) / s.sw, hs = (s.h - py + s.sh - 1) / s.sh;
    const int T = (int)phaseTaps[ph].size();
    const float** a = ptrs[tid].data();
    float* c[MR];
    for (int i = 0; i < MR; i++) {
      long m = (blk - firstBlock[ph]) * MR + i;
      if (m >= phaseRows[ph]) {
        for (int t = 0; t < T; t++) a[t * MR + i] = zero.data();
        c[i] = scratch[tid].data();
        continue;
      }
      long jx = m % ws, iy = (m / ws) % hs, n = m / (ws * hs);
      long ih = iy * s.sh + py, iw = jx * s.sw + px;
      c[i] = dx + ((n * s.h + ih) * s.w + iw) * s.cin;
      const float* dyn = dy + n * s.oh * s.ow * s.cout;
      for (int t = 0; t < T; t++) {
        long oh = iy + dOh[ph][t], ow = jx + dOw[ph][t];
        bool in = oh >= 0 && oh < s.oh && ow >= 0 && ow < s.ow;
        a[t * MR + i] = in ? dyn + (oh * s.ow + ow) * s.cout : zero.data();
      }
    }
    for (long j = 0; j < nb; j++) {
      float* cj[MR];
      int nv = (int)std::min<long>(NR, s.cin - j * NR);
      for (int i = 0; i < MR; i++) cj[i] = c[i] == scratch[tid].data() ? c[i] : c[i] + j * NR;
      tile_fwd<NV>(a, T, (int)s.cout, packed[ph].data() + j * T * s.cout * NR, NR, cj, nv, nullptr, false);
    }
  });
}

// ---------------------------------------------------------------- dW
struct Segment {
  const float* x;  // first input pixel (at the tile's first channel)
  const float* dy; // first output-gradient row (at the tile's first column)
  long n;          // pixels
};

// Tile of M input channels × NV·VW output channels, accumulated into c (row stride ldc).
template <int M, int NV>
inline void tile_dw(const Segment* seg, int nseg, long xstep, long dystep, long ci0, long co0, float* c, long ldc,
                    int nv) {
  vf acc[M][NV];
  if (nv == NV * VW) {
#pragma GCC unroll 16
    for (int i = 0; i < M; i++)
#pragma GCC unroll 2
      for (int v = 0; v < NV; v++) acc[i][v] = load(c + i * ldc + v * VW);
  } else {
    for (int i = 0; i < M; i++) {
      float tmp[NV * VW] = {};
      std::memcpy(tmp, c + i * ldc, nv * sizeof(float));
      for (int v = 0; v < NV; v++) acc[i][v] = load(tmp + v * VW);
    }
  }
  for (int g = 0; g < nseg; g++) {
    const float* xp = seg[g].x + ci0;
    const float* dp = seg[g].dy + co0;
    for (long p = 0; p < seg[g].n; p++) {
      vf b[NV];
#pragma GCC unroll 2
      for (int v = 0; v < NV; v++) b[v] = load(dp + v * VW);
#pragma GCC unroll 16
      for (int i = 0; i < M; i++) {
        float s = xp[i];
#pragma GCC unroll 2
        for (int v = 0; v < NV; v++) acc[i][v] += s * b[v];
      }
      xp += xstep;
      dp += dystep;
    }
  }
  if (nv == NV * VW) {
#pragma GCC unroll 16
    for (int i = 0; i < M; i++)
#pragma GCC unroll 2
      for (int v = 0; v < NV; v++) store(c + i * ldc + v * VW, acc[i][v]);
  } else {
    for (int i = 0; i < M; i++) {
      float tmp[NV * VW];
      for (int v = 0; v < NV; v++) store(tmp + v * VW, acc[i][v]);
      std::memcpy(c + i * ldc, tmp, nv * sizeof(float));
    }
  }
}

template <int NV, int M>
void tile_dw_dispatch(int m, const Segment* seg, int nseg, long xstep, long dystep, long ci0, long co0, float* c,
                      long ldc, int nv) {
  if constexpr (M == 0) {
    (void)m; (void)seg; (void)nseg; (void)xstep; (void)dystep; (void)ci0; (void)co0; (void)c; (void)ldc; (void)nv;
  } else {
    if (m == M) tile_dw<M, NV>(seg, nseg, xstep, dystep, ci0, co0, c, ldc, nv);
    else tile_dw_dispatch<NV, M - 1>(m, seg, nseg, xstep, dystep, ci0, co0, c, ldc, nv);
  }
}

// Work is split over (tap, output-channel panel): their dW entries are
// disjoint, and each runs its pixels in a fixed order, so the sums — and a
// training run — are the same bits whatever the thread count or scheduling.
template <int NV>
void conv2d_dw(const float* x, const float* dy, float* dw, const ConvShape& s) {
  constexpr int NR = NV * VW;
  const int taps = s.kh * s.kw;
  const long nb = (s.cout + NR - 1) / NR;
  const long M = s.b * s.oh * s.ow;
  // dy rows padded to a whole number of NR-wide panels when cout is not one,
  // so that the tile never reads past a row (or past the tensor).
  std::vector<float> dypad;
  long ldy = s.cout;
  if (s.cout % NR != 0) {
    ldy = nb * NR;
    dypad.assign(M * ldy, 0.f);
    for (long m = 0; m < M; m++) std::copy(dy + m * s.cout, dy + (m + 1) * s.cout, dypad.data() + m * ldy);
    dy = dypad.data();
  }
  const long K = taps * s.cin;
  // Accumulate in dW itself when its rows are whole panels, else in a padded copy.
  const long ldc = nb * NR;
  std::vector<float> cpad;
  float* acc = dw;
  if (ldc != s.cout) {
    cpad.assign(K * ldc, 0.f);
    acc = cpad.data();
  } else {
    std::fill(dw, dw + K * ldc, 0.f);
  }
  // Chunks of whole output rows (≈256 pixels) keep a chunk's x and dy in cache across the channel tiles.
  const long rows = s.b * s.oh;
  const long rowsPerChunk = std::max(1L, 256 / s.ow);
  const int nthreads = threads_for(2.0 * M * K * s.cout);
  std::vector<std::vector<Segment>> segs(nthreads, std::vector<Segment>(rowsPerChunk));
  parallel_for(taps * nb, 1, nthreads, [&](int tid, long item) {
    const int t = (int)(item / nb);
    const long j = item % nb;
    const long r = t / s.kw, q = t % s.kw;
    // Output columns whose input column falls inside the image for this tap.
    const long off = q * s.dw - s.pl;
    const long owLo = off >= 0 ? 0 : (-off + s.sw - 1) / s.sw;
    const long owHi = std::min(s.ow - 1, (s.w - 1 - off) >= 0 ? (s.w - 1 - off) / s.sw : -1);
    if (owHi < owLo) return;
    const int nv = (int)std::min<long>(NR, s.cout - j * NR);
    float* c = acc + (long)t * s.cin * ldc + j * NR;
    Segment* seg = segs[tid].data();
    for (long row0 = 0; row0 < rows; row0 += rowsPerChunk) {
      int nseg = 0;
      for (long row = row0; row < std::min(rows, row0 + rowsPerChunk); row++) {
        long n = row / s.oh, oh = row % s.oh;
        long ih = oh * s.sh + r * s.dh - s.pt;
        if (ih < 0 || ih >= s.h) continue;
        seg[nseg++] = {x + ((n * s.h + ih) * s.w + owLo * s.sw + off) * s.cin, dy + (row * s.ow + owLo) * ldy,
                       owHi - owLo + 1};
      }
      if (nseg == 0) continue;
      for (long ci0 = 0; ci0 < s.cin; ci0 += MR) {
        int m = (int)std::min<long>(MR, s.cin - ci0);
        tile_dw_dispatch<NV, MR>(m, seg, nseg, s.sw * s.cin, ldy, ci0, j * NR, c + ci0 * ldc, ldc, nv);
      }
    }
  });
  if (acc != dw)
    for (long k = 0; k < K; k++) std::copy(acc + k * ldc, acc + k * ldc + s.cout, dw + k * s.cout);
}

// ---------------------------------------------------------------- matmul
// C[b] = op(A[b]) · op(B[b]), op = transpose or not; a batch of 1 broadcasts.
// tiny-fcos's GroupNorm runs these (per-channel sums as ones · x, group
// means as [B, C] · [C, C]), and wasm's XNNPACK repacks its "weights" matrix
// on every call. Rows of C are accumulated as a·B[k, :] (vectorised over
// N); a transposed B is transposed into a buffer first.
void batch_matmul(const float* a, const float* b, float* c, long batchA, long batchB, long M, long K, long N,
                  bool transA, bool transB) {
  const long batch = std::max(batchA, batchB);
  const int nthreads = threads_for(2.0 * batch * M * K * N);
  std::vector<std::vector<float>> bt(nthreads);
  parallel_for(batch, 1, nthreads, [&](int tid, long i) {
    const float* A = a + (batchA == 1 ? 0 : i) * M * K;
    const float* B = b + (batchB == 1 ? 0 : i) * K * N;
    float* C = c + i * M * N;
    if (transB) {
      bt[tid].resize(K * N);
      for (long n = 0; n < N; n++)
        for (long k = 0; k < K; k++) bt[tid][k * N + n] = B[n * K + k];
      B = bt[tid].data();
    }
    for (long m = 0; m < M; m++) {
      float* row = C + m * N;
      std::fill(row, row + N, 0.f);
      for (long k = 0; k < K; k++) {
        const float s = transA ? A[k * M + m] : A[m * K + k];
        const float* brow = B + k * N;
        for (long n = 0; n < N; n++) row[n] += s * brow[n];
      }
    }
  });
}

// ---------------------------------------------------------------- N-API glue
#define CHECK(call)                                                                \
  do {                                                                             \
    if ((call) != napi_ok) {                                                       \
      napi_throw_error(env, nullptr, "casl native: N-API call failed: " #call);    \
      return nullptr;                                                              \
    }                                                                              \
  } while (0)

// args: (heap: Uint8Array, params: Float64Array)
bool read_args(napi_env env, napi_callback_info info, uint8_t** heap, size_t* heapLen, double** params,
               size_t* nparams) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 2) {
    napi_throw_type_error(env, nullptr, "casl native: expected (heap: Uint8Array, params: Float64Array)");
    return false;
  }
  napi_typedarray_type type;
  void* data;
  napi_value ab;
  size_t off;
  if (napi_get_typedarray_info(env, argv[0], &type, heapLen, &data, &ab, &off) != napi_ok || type != napi_uint8_array) {
    napi_throw_type_error(env, nullptr, "casl native: argument 1 must be the wasm heap as a Uint8Array");
    return false;
  }
  *heap = static_cast<uint8_t*>(data);
  if (napi_get_typedarray_info(env, argv[1], &type, nparams, &data, &ab, &off) != napi_ok ||
      type != napi_float64_array) {
    napi_throw_type_error(env, nullptr, "casl native: argument 2 must be a Float64Array of parameters");
    return false;
  }
  *params = static_cast<double*>(data);
  return true;
}

ConvShape shape_from(const double* p) {
  return ConvShape{(long)p[0], (long)p[1], (long)p[2], (long)p[3], (long)p[4], (long)p[5], (long)p[6], (long)p[7],
                   (long)p[8], (long)p[9], (long)p[10], (long)p[11], (long)p[12], (long)p[13], (long)p[14]};
}

bool in_heap(napi_env env, double off, double floats, size_t heapLen, const char* what) {
  if (off < 0 || off + floats * 4 > (double)heapLen || (long)off % 4 != 0) {
    char msg[160];
    snprintf(msg, sizeof msg, "casl native: %s (offset %.0f, %.0f floats) lies outside the wasm heap (%zu bytes)",
             what, off, floats, heapLen);
    napi_throw_range_error(env, nullptr, msg);
    return false;
  }
  return true;
}

enum class Op { Forward, Filter, Input };

// params: the 15 ConvShape values, then byte offsets into the heap —
//   Forward: x, filter, bias (−1: none), y, then relu (0/1);
//   Filter:  x, dy, dW;    Input: dy, filter, dx.
template <Op op>
napi_value Kernel(napi_env env, napi_callback_info info) {
  const char* name = op == Op::Forward ? "conv2d" : op == Op::Filter ? "conv2dBackpropFilter" : "conv2dBackpropInput";
  uint8_t* heap;
  size_t heapLen, np;
  double* p;
  if (!read_args(env, info, &heap, &heapLen, &p, &np)) return nullptr;
  const size_t want = op == Op::Forward ? 20 : 18;
  if (np < want) {
    char msg[120];
    snprintf(msg, sizeof msg, "casl native %s: expected %zu parameters, got %zu", name, want, np);
    napi_throw_range_error(env, nullptr, msg);
    return nullptr;
  }
  ConvShape s = shape_from(p);
  if (op == Op::Input && (s.dh != 1 || s.dw != 1)) {
    napi_throw_range_error(env, nullptr, "casl native conv2dBackpropInput: dilation must be 1");
    return nullptr;
  }
  const double xs = s.b * s.h * s.w * s.cin, ws = s.kh * s.kw * s.cin * s.cout, ys = s.b * s.oh * s.ow * s.cout;
  const double sizes[3] = {op == Op::Input ? ys : xs, op == Op::Filter ? ys : ws, op == Op::Forward ? 0 : op == Op::Filter ? ws : xs};
  const char* names[3] = {op == Op::Input ? "dy" : "x", op == Op::Filter ? "dy" : "filter", op == Op::Filter ? "dW" : "dx"};
  for (int i = 0; i < (op == Op::Forward ? 2 : 3); i++)
    if (!in_heap(env, p[15 + i], sizes[i], heapLen, names[i])) return nullptr;
  auto at = [&](int i) { return reinterpret_cast<float*>(heap + (size_t)p[15 + i]); };
  const bool narrow = (op == Op::Input ? s.cin : s.cout) <= VW;
  if (op == Op::Forward) {
    if ((p[17] >= 0 && !in_heap(env, p[17], s.cout, heapLen, "bias")) || !in_heap(env, p[18], ys, heapLen, "y"))
      return nullptr;
    const float* bias = p[17] >= 0 ? at(2) : nullptr;
    if (narrow) conv2d<1>(at(0), at(1), bias, at(3), s, p[19] != 0);
    else conv2d<2>(at(0), at(1), bias, at(3), s, p[19] != 0);
  } else if (op == Op::Filter) {
    if (narrow) conv2d_dw<1>(at(0), at(1), at(2), s);
    else conv2d_dw<2>(at(0), at(1), at(2), s);
  } else {
    if (narrow) conv2d_dx<1>(at(0), at(1), at(2), s);
    else conv2d_dx<2>(at(0), at(1), at(2), s);
  }
  return nullptr;
}

// params: batchA, batchB, M, K, N, transposeA, transposeB, aOff, bOff, cOff
napi_value BatchMatMul(napi_env env, napi_callback_info info) {
  uint8_t* heap;
  size_t heapLen, np;
  double* p;
  if (!read_args(env, info, &heap, &heapLen, &p, &np)) return nullptr;
  if (np < 10) {
    napi_throw_range_error(env, nullptr, "casl native batchMatMul: expected 10 parameters");
    return nullptr;
  }
  const long batchA = (long)p[0], batchB = (long)p[1], M = (long)p[2], K = (long)p[3], N = (long)p[4];
  if (!in_heap(env, p[7], (double)batchA * M * K, heapLen, "a") || !in_heap(env, p[8], (double)batchB * K * N, heapLen, "b") ||
      !in_heap(env, p[9], (double)std::max(batchA, batchB) * M * N, heapLen, "output"))
    return nullptr;
  batch_matmul(reinterpret_cast<const float*>(heap + (size_t)p[7]), reinterpret_cast<const float*>(heap + (size_t)p[8]),
               reinterpret_cast<float*>(heap + (size_t)p[9]), batchA, batchB, M, K, N, p[5] != 0, p[6] != 0);
  return nullptr;
}

napi_value SetThreads(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t n = 1;
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (argc < 1 || napi_get_value_int32(env, argv[0], &n) != napi_ok || n < 1 || n > 256) {
    napi_throw_range_error(env, nullptr, "casl native setThreads: expected an integer from 1 to 256");
    return nullptr;
  }
  pool.resize(n);
  return nullptr;
}

napi_value Info(napi_env env, napi_callback_info) {
  napi_value obj, isa, threads, lanes;
  CHECK(napi_create_object(env, &obj));
  CHECK(napi_create_string_utf8(env, ISA, NAPI_AUTO_LENGTH, &isa));
  CHECK(napi_create_int32(env, pool.size(), &threads));
  CHECK(napi_create_int32(env, VW, &lanes));
  CHECK(napi_set_named_property(env, obj, "isa", isa));
  CHECK(napi_set_named_property(env, obj, "threads", threads));
  CHECK(napi_set_named_property(env, obj, "lanes", lanes));
  return obj;
}

napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"conv2d", nullptr, Kernel<Op::Forward>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"conv2dBackpropFilter", nullptr, Kernel<Op::Filter>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"conv2dBackpropInput", nullptr, Kernel<Op::Input>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"batchMatMul", nullptr, BatchMatMul, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"setThreads", nullptr, SetThreads, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"info", nullptr, Info, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return nullptr;
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
