// casl's decode fast path: one call on a libuv worker thread decodes a JPEG
// (libjpeg-turbo, with DCT scaling: Pillow's draft mode, sharp's shrink on
// load) or a PNG (libpng), resizes it with an antialiased triangle filter to
// whole-pixel sides, applies the EXIF orientation and a horizontal flip, and
// places it at a whole-pixel offset on a zeroed canvas, cropping what falls
// outside. That one geometry serves both callers (src/io/decode.ts): the
// inference letterbox (top-left, no flip) and the training loader's views
// (src/augment/sharp-resample.ts, wholePixelPlacement). It exists because
// sharp's fixed cost per image (building a libvips pipeline, handing work
// between its threads) was most of the CPU a small view took, and the
// loader paid it twice an image (README: Decoding and COCO JSON).
//
// It decodes only what it can decode exactly as the sharp path would, and
// declines the rest with the reason, so the caller decodes those with sharp
// (which also words the error of a broken file):
//   JPEG: 8-bit baseline or progressive in YCbCr, RGB or grayscale, no
//         embedded ICC profile other than sRGB, not a single libjpeg warning;
//   PNG:  8-bit RGB, RGBA, gray, gray + alpha or palette (with tRNS), any
//         interlace, no iCCP profile, not a single libpng warning; alpha is
//         composited over black as libvips' flatten does (truncating).
//
// JS API:
//   view(bytes: Uint8Array, out: Uint8Array, canvasWidth, canvasHeight,
//        width, height, orientation, storedWidth, storedHeight,
//        flip, offsetX, offsetY, callback(err, declined: string | null))
// `out` is the canvasWidth × canvasHeight × 3 canvas, every byte of which
// is written (what the view does not cover, zero), so it may be a recycled
// buffer; width × height is the resized image in the oriented frame,
// orientation the EXIF value to apply (1 = none), storedWidth × storedHeight
// the size the caller read from the header and planned with (the decoder
// must agree); the oriented, resized
// image, mirrored left-right when flip is 1, has its top-left pixel at canvas
// (offsetX, offsetY), either of which may be negative (a crop). The callback
// gets null when `out` holds the view, or the reason the fast path declined.
//
//   readFile(path: string, maxBytes: number,
//            callback(err, bytes: Buffer | null, code: string | null, size))
// reads a whole file in one trip to the pool (open, fstat, read, close),
// where Node's fs takes four, each needing the main thread between them: in
// the training loader the main thread is the train step's, so every hop is
// an event-loop turn the loader waits for. `code` is the errno name
// (ENOENT, EISDIR, EACCES, …) or "EFBIG" when the file is over maxBytes
// (then nothing is read and `size` is its size).
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <node_api.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>
#include <png.h>

#define DECLINED_LEN (JMSG_LENGTH_MAX + 128)

typedef struct {
  struct jpeg_error_mgr pub;
  jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
} ErrorManager;

static void on_error(j_common_ptr cinfo) {
  ErrorManager *err = (ErrorManager *)cinfo->err;
  (*cinfo->err->format_message)(cinfo, err->message);
  longjmp(err->jump, 1);
}

// A warning (corrupt data, premature end) means libjpeg is guessing pixels;
// sharp then decides whether that is an error (failOn), so decline.
static void on_message(j_common_ptr cinfo, int level) {
  if (level < 0) on_error(cinfo);
}

typedef struct {
  napi_async_work work;
  napi_ref bytes_ref, out_ref, callback_ref;
  const unsigned char *bytes;
  size_t bytes_len;
  unsigned char *out;
  int canvas_width, canvas_height, width, height, orientation, stored_width, stored_height, flip, offset_x, offset_y;
  char declined[DECLINED_LEN];
} Job;

/* Pillow's antialiased bilinear (a triangle filter widened by the reduction
 * factor): for each output index, the first input index and the normalised
 * weights of the inputs it covers. */
typedef struct {
  int *first, *count;
  float *weights;
  int taps;
} Coeffs;

static int make_coeffs(int in, int out, Coeffs *c) {
  double scale = (double)in / out;
  double filterscale = scale > 1 ? scale : 1;
  double support = filterscale;
  c->taps = (int)(2 * support + 2);
  c->first = malloc(sizeof(int) * out);
  c->count = malloc(sizeof(int) * out);
  c->weights = malloc(sizeof(float) * out * c->taps);
  if (!c->first || !c->count || !c->weights) return 0;
  for (int o = 0; o < out; o++) {
    double center = (o + 0.5) * scale;
    int lo = (int)(center - support + 0.5);
    int hi = (int)(center + support + 0.5);
    if (lo < 0) lo = 0;
    if (hi > in) hi = in;
    double total = 0;
    int n = hi - lo;
    float *w = c->weights + o * c->taps;
    for (int k = 0; k < n; k++) {
      double x = (k + lo - center + 0.5) / filterscale;
      double v = x < 0 ? 1 + x : 1 - x;
      w[k] = v > 0 ? (float)v : 0;
      total += w[k];
    }
    for (int k = 0; k < n; k++) w[k] = total > 0 ? (float)(w[k] / total) : 0;
    c->first[o] = lo;
    c->count[o] = n;
  }
  return 1;
}

static void free_coeffs(Coeffs *c) {
  free(c->first);
  free(c->count);
  free(c->weights);
}

/* A half-open rectangle of pixels. */
typedef struct {
  int x0, y0, x1, y1;
} Rect;

/* Where resize writes: output pixel (x, y) goes to
 * base + ((y + dy) · stride + x + dx) · 3, stride in pixels. */
typedef struct {
  unsigned char *base;
  size_t stride;
  int dx, dy;
} Target;

/* A pixel's three channels and a fourth lane that is thrown away: the
 * horizontal filter does each pixel's channels in one SSE multiply and add,
 * lane by lane the same single-precision operations as three scalar ones.
 * aligned(4): loads and stores at any float. */
typedef float v4f __attribute__((vector_size(16), aligned(4)));

/* One source row through the horizontal filter: output columns x0…x1 into m
 * (3 floats a pixel; the last pixel's fourth lane lands on m[3·(x1 − x0)],
 * so m has one float to spare). The row's bytes c0…c1 (the columns those
 * outputs read) are converted to float once into f (one float to spare),
 * not once per tap: on an upscale every source pixel feeds two or more
 * outputs. Each sum is the loop 0 + w0·p0 + w1·p1 + … in the same order. */
/* Inlined, so that resize's AVX2 copy has an AVX2 copy of it too. */
static inline __attribute__((always_inline)) void filter_row(const unsigned char *row, const Coeffs *cx, int x0, int x1, int c0, int c1, float *restrict f, float *restrict m) {
  int len = (c1 - c0) * 3;
  for (int i = 0; i < len; i++) f[i] = row[c0 * 3 + i];
  f[len] = 0;
  for (int x = x0; x < x1; x++, m += 3) {
    const float *w = cx->weights + (size_t)x * cx->taps;
    const float *p = f + (size_t)(cx->first[x] - c0) * 3;
    int n = cx->count[x];
    /* Two and three taps (up- and mild downscales) unrolled: 0 + w0·p0 is w0·p0, bit for bit, as it is ≥ +0. */
    if (n == 2) {
      *(v4f *)m = w[0] * *(const v4f *)p + w[1] * *(const v4f *)(p + 3);
    } else if (n == 3) {
      *(v4f *)m = (w[0] * *(const v4f *)p + w[1] * *(const v4f *)(p + 3)) + w[2] * *(const v4f *)(p + 6);
    } else {
      v4f sum = {0, 0, 0, 0};
      for (int k = 0; k < n; k++, p += 3) sum += w[k] * *(const v4f *)p;
      *(v4f *)m = sum;
    }
  }
}

static unsigned char to_byte(float a) {
  return a <= 0 ? 0 : a >= 255 ? 255 : (unsigned char)a;
}

/* On x86-64 the resize also has an AVX2 copy, picked at load time where the
 * CPU has it: wider vectors for the row loops, the same IEEE operations in
 * the same order (no FMA: -ffp-contract=off), so the same bytes, at about
 * two thirds of the CPU. */
#if defined(__x86_64__) && (defined(__clang__) || __GNUC__ >= 6)
#define RESIZE_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define RESIZE_CLONES
#endif

/* Resizes src (sw × sh RGB) to dw × dh, computing only the output pixels
 * inside `r` (the part of the view on the canvas), into `t`. Separable:
 * each source row the outputs need goes through the horizontal filter once,
 * into a ring of as many rows as the vertical filter has taps (output rows
 * read ever later source rows), so the intermediate stays a few rows wide
 * instead of the whole image of floats. */
RESIZE_CLONES static int resize(const unsigned char *src, int sw, int sh, int dw, int dh, Rect r, Target t) {
  Coeffs cx = {0}, cy = {0};
  int cols = r.x1 - r.x0;
  size_t n = (size_t)cols * 3, stride = n + 1; /* a ring row: filter_row writes one float past the pixels */
  float *ring = NULL, *f = NULL, *acc = NULL;
  int ok = make_coeffs(sw, dw, &cx) && make_coeffs(sh, dh, &cy);
  /* The source columns the outputs x0…x1 read (first[] rises with the output index). */
  int c0 = 0, c1 = 0;
  if (ok) {
    c0 = cx.first[r.x0];
    for (int x = r.x0; x < r.x1; x++) if (cx.first[x] + cx.count[x] > c1) c1 = cx.first[x] + cx.count[x];
    if (c1 < c0) c1 = c0;
    ring = malloc(sizeof(float) * stride * cy.taps);
    f = malloc(sizeof(float) * ((size_t)(c1 - c0) * 3 + 1));
    acc = malloc(sizeof(float) * n);
    ok = ring && f && acc;
  }
  if (ok) {
    int next = 0; /* the next source row to filter */
    for (int y = r.y0; y < r.y1; y++) {
      int first = cy.first[y], count = cy.count[y];
      if (next < first) next = first;
      for (; next < first + count; next++) {
        filter_row(src + (size_t)next * sw * 3, &cx, r.x0, r.x1, c0, c1, f, ring + (size_t)(next % cy.taps) * stride);
      }
      const float *w = cy.weights + (size_t)y * cy.taps;
      unsigned char *d = t.base + ((size_t)(y + t.dy) * t.stride + r.x0 + t.dx) * 3;
      /* Row by row, so the inner loops run over a whole row and vectorise;
       * the same sums as 0.5 + w0·m0 + w1·m1 + … in that order. */
      if (count == 2) {
        const float *restrict m0 = ring + (size_t)(first % cy.taps) * stride;
        const float *restrict m1 = ring + (size_t)((first + 1) % cy.taps) * stride;
        float w0 = w[0], w1 = w[1];
        for (size_t i = 0; i < n; i++) d[i] = to_byte((0.5f + w0 * m0[i]) + w1 * m1[i]);
        continue;
      }
      if (count == 3) {
        const float *restrict m0 = ring + (size_t)(first % cy.taps) * stride;
        const float *restrict m1 = ring + (size_t)((first + 1) % cy.taps) * stride;
        const float *restrict m2 = ring + (size_t)((first + 2) % cy.taps) * stride;
        float w0 = w[0], w1 = w[1], w2 = w[2];
        for (size_t i = 0; i < n; i++) d[i] = to_byte(((0.5f + w0 * m0[i]) + w1 * m1[i]) + w2 * m2[i]);
        continue;
      }
      float *restrict a = acc;
      for (size_t i = 0; i < n; i++) a[i] = 0.5f;
      for (int k = 0; k < count; k++) {
        const float *restrict m = ring + (size_t)((first + k) % cy.taps) * stride;
        float wk = w[k];
        for (size_t i = 0; i < n; i++) a[i] += wk * m[i];
      }
      for (size_t i = 0; i < n; i++) d[i] = to_byte(a[i]);
    }
  }
  free(ring);
  free(f);
  free(acc);
  free_coeffs(&cx);
  free_coeffs(&cy);
  return ok;
}

/* The stored-frame pixel (of a tw × th stored image) that oriented pixel
 * (x, y) shows under EXIF orientation o. */
static void stored_of(int o, int tw, int th, int x, int y, int *sx, int *sy) {
  switch (o) {
    case 1: *sx = x; *sy = y; break;
    case 2: *sx = tw - 1 - x; *sy = y; break;
    case 3: *sx = tw - 1 - x; *sy = th - 1 - y; break;
    case 4: *sx = x; *sy = th - 1 - y; break;
    case 5: *sx = y; *sy = x; break;
    case 6: *sx = y; *sy = th - 1 - x; break;
    case 7: *sx = tw - 1 - y; *sy = th - 1 - x; break;
    default: *sx = tw - 1 - y; *sy = x; break; /* 8 */
  }
}

/* Where the view lands: the canvas pixels it covers, and the stored-frame
 * pixels of the resized image those show. Empty canvas rect: nothing shows. */
static void plan_view(const Job *job, Rect *canvas, Rect *stored) {
  int w = job->width, h = job->height, ox = job->offset_x, oy = job->offset_y;
  canvas->x0 = ox > 0 ? ox : 0;
  canvas->y0 = oy > 0 ? oy : 0;
  canvas->x1 = ox + w < job->canvas_width ? ox + w : job->canvas_width;
  canvas->y1 = oy + h < job->canvas_height ? oy + h : job->canvas_height;
  if (canvas->x1 <= canvas->x0 || canvas->y1 <= canvas->y0) {
    *canvas = (Rect){0, 0, 0, 0};
    *stored = (Rect){0, 0, 0, 0};
    return;
  }
  /* The oriented image's visible columns, mirrored when flipped. */
  int x0 = canvas->x0 - ox, x1 = canvas->x1 - ox;
  if (job->flip) {
    int t = w - x1;
    x1 = w - x0;
    x0 = t;
  }
  int y0 = canvas->y0 - oy, y1 = canvas->y1 - oy;
  int transposed = job->orientation >= 5;
  int tw = transposed ? h : w, th = transposed ? w : h;
  /* Orientations map rectangles to rectangles: two opposite corners suffice. */
  int ax, ay, bx, by;
  stored_of(job->orientation, tw, th, x0, y0, &ax, &ay);
  stored_of(job->orientation, tw, th, x1 - 1, y1 - 1, &bx, &by);
  stored->x0 = ax < bx ? ax : bx;
  stored->x1 = (ax < bx ? bx : ax) + 1;
  stored->y0 = ay < by ? ay : by;
  stored->y1 = (ay < by ? by : ay) + 1;
}

/* Copies the visible part of the stored-frame image (tw × th) onto the
 * canvas, oriented, flipped and offset as the job says. */
static void place(const Job *job, const unsigned char *src, int tw, int th, Rect canvas) {
  int o = job->orientation, cw = job->canvas_width;
  for (int Y = canvas.y0; Y < canvas.y1; Y++) {
    int y = Y - job->offset_y;
    unsigned char *d = job->out + ((size_t)Y * cw + canvas.x0) * 3;
    if (o == 1 && !job->flip) {
      memcpy(d, src + ((size_t)y * tw + canvas.x0 - job->offset_x) * 3, (size_t)(canvas.x1 - canvas.x0) * 3);
      continue;
    }
    for (int X = canvas.x0; X < canvas.x1; X++, d += 3) {
      int x = X - job->offset_x;
      if (job->flip) x = job->width - 1 - x;
      int sx, sy;
      stored_of(o, tw, th, x, y, &sx, &sy);
      memcpy(d, src + ((size_t)sy * tw + sx) * 3, 3);
    }
  }
}

/* Does the ICC profile's description name sRGB? Its 'desc' tag, ASCII (ICC
 * v2 'desc') or UTF-16BE (v4 'mluc'), holds e.g. "sRGB IEC61966-2.1". */
static int describes_srgb(const unsigned char *p, unsigned len) {
#define U32(o) ((unsigned)p[o] << 24 | (unsigned)p[(o) + 1] << 16 | (unsigned)p[(o) + 2] << 8 | p[(o) + 3])
  if (len < 132 || memcmp(p + 16, "RGB ", 4) != 0) return 0;
  unsigned tags = U32(128);
  for (unsigned i = 0; i < tags && 132 + 12 * (i + 1) <= len; i++) {
    const unsigned char *e = p + 132 + 12 * i;
    if (memcmp(e, "desc", 4) != 0) continue;
    unsigned off = U32(132 + 12 * i + 4), size = U32(132 + 12 * i + 8);
    if (off > len || size > len - off || size < 12) return 0;
    const unsigned char *t = p + off;
    if (memcmp(t, "desc", 4) == 0) {
      for (unsigned k = 12; k + 4 <= size; k++) if (memcmp(t + k, "sRGB", 4) == 0) return 1;
    } else if (memcmp(t, "mluc", 4) == 0) {
      for (unsigned k = 16; k + 8 <= size; k++) if (memcmp(t + k, "\0s\0R\0G\0B", 8) == 0) return 1;
    }
    return 0;
  }
  return 0;
#undef U32
}

/* Decodes the JPEG to RGB in the stored frame, at the largest DCT scale
 * (1, 1/2, 1/4, 1/8) that still leaves the filter the last step towards a
 * tw × th target; NULL with job->declined set when it declines. */
static unsigned char *decode_jpeg(Job *job, int tw, int th, int *out_w, int *out_h) {
  struct jpeg_decompress_struct cinfo;
  ErrorManager err;
  /* volatile: assigned between setjmp and a possible longjmp. */
  unsigned char *volatile pixels = NULL;
  JOCTET *icc = NULL; /* read and freed with no libjpeg call between */
  unsigned int icc_len = 0;
  cinfo.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = on_error;
  err.pub.emit_message = on_message;
  if (setjmp(err.jump)) {
    snprintf(job->declined, sizeof job->declined, "libjpeg: %s", err.message);
    jpeg_destroy_decompress(&cinfo);
    free(pixels);
    return NULL;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, job->bytes, (unsigned long)job->bytes_len);
  jpeg_save_markers(&cinfo, JPEG_APP0 + 2, 0xffff);
  jpeg_read_header(&cinfo, TRUE);
  if (cinfo.jpeg_color_space != JCS_YCbCr && cinfo.jpeg_color_space != JCS_GRAYSCALE && cinfo.jpeg_color_space != JCS_RGB) {
    snprintf(job->declined, sizeof job->declined, "colour space %d (CMYK or YCCK): sharp converts it", (int)cinfo.jpeg_color_space);
  } else if (jpeg_read_icc_profile(&cinfo, &icc, &icc_len)) {
    /* sharp converts through any embedded profile; from sRGB to sRGB that
     * is the identity up to rounding, anything else is a real conversion. */
    if (!describes_srgb(icc, icc_len)) snprintf(job->declined, sizeof job->declined, "embedded ICC profile that is not sRGB: sharp converts it to sRGB");
    free(icc);
  }
  if (!job->declined[0] && ((int)cinfo.image_width != job->stored_width || (int)cinfo.image_height != job->stored_height)) {
    snprintf(job->declined, sizeof job->declined, "libjpeg reads %u×%u, the header said %d×%d", cinfo.image_width, cinfo.image_height,
             job->stored_width, job->stored_height);
  }
  if (job->declined[0]) {
    jpeg_destroy_decompress(&cinfo);
    return NULL;
  }
  /* DCT scaling by 1/2, 1/4 or 1/8, chosen as sharp's shrink on load does
   * (fastShrinkOnLoad), so both paths resample the same decoded pixels: the
   * largest that leaves at least the target on both sides, one step less
   * when it would do the whole reduction (sharp: libjpeg's rounding errors
   * at exact factors), so the triangle filter always has the last step. */
  double shrink = (double)cinfo.image_width / tw;
  if ((double)cinfo.image_height / th < shrink) shrink = (double)cinfo.image_height / th;
  int denom = shrink >= 8 ? 8 : shrink >= 4 ? 4 : shrink >= 2 ? 2 : 1;
  if (denom > 1 && (int)shrink == denom) denom /= 2;
  cinfo.scale_num = 1;
  cinfo.scale_denom = denom;
  cinfo.out_color_space = JCS_RGB;
  jpeg_start_decompress(&cinfo);
  int sw = cinfo.output_width, sh = cinfo.output_height;
  pixels = malloc((size_t)sw * sh * 3);
  if (!pixels) {
    snprintf(job->declined, sizeof job->declined, "out of memory for %d×%d pixels", sw, sh);
    jpeg_destroy_decompress(&cinfo);
    return NULL;
  }
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = pixels + (size_t)cinfo.output_scanline * sw * 3;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  *out_w = sw;
  *out_h = sh;
  return pixels;
}

typedef struct {
  const unsigned char *data;
  size_t len, pos;
  char message[200];
} PngSource;

static void png_from_memory(png_structp png, png_bytep out, size_t n) {
  PngSource *src = png_get_io_ptr(png);
  if (n > src->len - src->pos) png_error(png, "premature end of PNG data");
  memcpy(out, src->data + src->pos, n);
  src->pos += n;
}

static void png_on_error(png_structp png, png_const_charp msg) {
  PngSource *src = png_get_error_ptr(png);
  snprintf(src->message, sizeof src->message, "%s", msg);
  png_longjmp(png, 1);
}

/* A warning (a bad CRC in an ancillary chunk, a profile libpng doubts,
 * extra data) is where libpng and libvips may part ways: decline. */
static void png_on_warning(png_structp png, png_const_charp msg) {
  PngSource *src = png_get_error_ptr(png);
  snprintf(src->message, sizeof src->message, "warning: %s", msg);
  png_longjmp(png, 1);
}

/* Decodes the PNG to RGB in the stored frame at full size (PNG has no
 * reduced-scale decoding), alpha composited over black; NULL with
 * job->declined set when it declines. */
static unsigned char *decode_png(Job *job, int *out_w, int *out_h) {
  PngSource src = {job->bytes, job->bytes_len, 0, ""};
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, png_on_error, png_on_warning);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  unsigned char *volatile pixels = NULL;
  png_bytep *volatile rows = NULL;
  if (!info) {
    snprintf(job->declined, sizeof job->declined, "libpng: out of memory");
    png_destroy_read_struct(&png, NULL, NULL);
    return NULL;
  }
  if (setjmp(png_jmpbuf(png))) {
    snprintf(job->declined, sizeof job->declined, "libpng: %s", src.message);
    png_destroy_read_struct(&png, &info, NULL);
    free(pixels);
    free(rows);
    return NULL;
  }
  png_set_read_fn(png, &src, png_from_memory);
  png_read_info(png, info);
  png_uint_32 w, h;
  int depth, type, interlace;
  png_get_IHDR(png, info, &w, &h, &depth, &type, &interlace, NULL, NULL);
  if ((int)w != job->stored_width || (int)h != job->stored_height) {
    snprintf(job->declined, sizeof job->declined, "libpng reads %u×%u, the header said %d×%d", (unsigned)w, (unsigned)h, job->stored_width,
             job->stored_height);
  } else if (png_get_valid(png, info, PNG_INFO_iCCP)) {
    snprintf(job->declined, sizeof job->declined, "embedded ICC profile (iCCP): sharp converts through it");
  } else if (depth == 16) {
    snprintf(job->declined, sizeof job->declined, "16-bit PNG: sharp scales it to 8 bits");
  } else if (depth < 8 && type != PNG_COLOR_TYPE_PALETTE) {
    snprintf(job->declined, sizeof job->declined, "%d-bit grayscale PNG: sharp expands it", depth);
  }
  if (job->declined[0]) {
    png_destroy_read_struct(&png, &info, NULL);
    return NULL;
  }
  if (type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
  if (type == PNG_COLOR_TYPE_GRAY || type == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  int channels = png_get_channels(png, info);
  if ((channels != 3 && channels != 4) || png_get_rowbytes(png, info) != (size_t)w * channels) {
    snprintf(job->declined, sizeof job->declined, "libpng gives %d channels, %zu bytes a row", channels, (size_t)png_get_rowbytes(png, info));
    png_destroy_read_struct(&png, &info, NULL);
    return NULL;
  }
  pixels = malloc((size_t)w * h * channels);
  rows = malloc(sizeof(png_bytep) * h);
  if (!pixels || !rows) png_error(png, "out of memory");
  for (png_uint_32 y = 0; y < h; y++) rows[y] = pixels + (size_t)y * w * channels;
  png_read_image(png, rows);
  /* To the end: a damaged chunk after the image data is declined too. */
  png_read_end(png, NULL);
  png_destroy_read_struct(&png, &info, NULL);
  free(rows);
  if (channels == 4) {
    /* libvips' flatten onto black: value · alpha / 255, truncated; in place. */
    unsigned char *d = pixels;
    const unsigned char *p = pixels;
    for (size_t i = 0, n = (size_t)w * h; i < n; i++, p += 4, d += 3) {
      unsigned a = p[3];
      d[0] = (unsigned char)(p[0] * a / 255);
      d[1] = (unsigned char)(p[1] * a / 255);
      d[2] = (unsigned char)(p[2] * a / 255);
    }
  }
  *out_w = (int)w;
  *out_h = (int)h;
  return pixels;
}

static int is_png(const unsigned char *b, size_t n) {
  return n >= 8 && png_sig_cmp(b, 0, 8) == 0;
}

/* Zeroes the canvas outside `canvas` (all of it when that is empty), so the
 * caller may hand in a recycled buffer: with the view written inside, every
 * byte is set. */
static void clear_outside(const Job *job, Rect canvas) {
  size_t row = (size_t)job->canvas_width * 3;
  unsigned char *out = job->out;
  if (canvas.x1 <= canvas.x0) {
    memset(out, 0, row * job->canvas_height);
    return;
  }
  memset(out, 0, row * canvas.y0);
  for (int y = canvas.y0; y < canvas.y1; y++) {
    memset(out + y * row, 0, (size_t)canvas.x0 * 3);
    memset(out + y * row + (size_t)canvas.x1 * 3, 0, (size_t)(job->canvas_width - canvas.x1) * 3);
  }
  memset(out + canvas.y1 * row, 0, row * (job->canvas_height - canvas.y1));
}

static void execute(napi_env env, void *data) {
  (void)env;
  Job *job = data;
  int transposed = job->orientation >= 5;
  int tw = transposed ? job->height : job->width; /* target, stored frame */
  int th = transposed ? job->width : job->height;
  int sw = 0, sh = 0;
  unsigned char *pixels = is_png(job->bytes, job->bytes_len) ? decode_png(job, &sw, &sh) : decode_jpeg(job, tw, th, &sw, &sh);
  if (!pixels) return;
  Rect canvas, stored;
  plan_view(job, &canvas, &stored);
  clear_outside(job, canvas);
  if (canvas.x1 > canvas.x0) {
    if (sw == tw && sh == th) {
      place(job, pixels, tw, th, canvas);
    } else {
      /* Unturned views resize straight onto the canvas (the stored frame is
       * the canvas's, shifted by the offset); turned or mirrored ones into a
       * buffer that place() then orients. */
      int direct = job->orientation == 1 && !job->flip;
      unsigned char *resized = direct ? NULL : malloc((size_t)tw * th * 3);
      Target t = direct ? (Target){job->out, (size_t)job->canvas_width, job->offset_x, job->offset_y} : (Target){resized, (size_t)tw, 0, 0};
      if (!t.base || !resize(pixels, sw, sh, tw, th, stored, t)) {
        snprintf(job->declined, sizeof job->declined, "out of memory resizing %d×%d to %d×%d", sw, sh, tw, th);
      } else if (!direct) {
        place(job, resized, tw, th, canvas);
      }
      free(resized);
    }
  }
  free(pixels);
}

/* The first callback argument: null, or an Error when the work was cancelled. */
static napi_value work_error(napi_env env, napi_status status) {
  napi_value v, msg;
  if (status == napi_ok) {
    napi_get_null(env, &v);
  } else {
    napi_create_string_utf8(env, "casl decode addon: the work was cancelled", NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, NULL, msg, &v);
  }
  return v;
}

/* Releases the async work and the callback's reference, then calls it. */
static void call_back(napi_env env, napi_ref callback_ref, napi_async_work work, size_t argc, napi_value *args) {
  napi_value callback, global;
  napi_get_reference_value(env, callback_ref, &callback);
  napi_get_global(env, &global);
  napi_delete_reference(env, callback_ref);
  napi_delete_async_work(env, work);
  napi_call_function(env, global, callback, argc, args, NULL);
}

static void complete(napi_env env, napi_status status, void *data) {
  Job *job = data;
  napi_value args[2];
  args[0] = work_error(env, status);
  if (status == napi_ok && job->declined[0]) napi_create_string_utf8(env, job->declined, NAPI_AUTO_LENGTH, &args[1]);
  else napi_get_null(env, &args[1]);
  napi_delete_reference(env, job->bytes_ref);
  napi_delete_reference(env, job->out_ref);
  napi_ref callback_ref = job->callback_ref;
  napi_async_work work = job->work;
  free(job);
  call_back(env, callback_ref, work, 2, args);
}

static napi_value throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, NULL, msg);
  return NULL;
}

static int typed_bytes(napi_env env, napi_value v, unsigned char **data, size_t *len) {
  napi_typedarray_type type;
  size_t length, offset;
  napi_value buffer;
  void *p;
  bool is;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) return 0;
  if (napi_get_typedarray_info(env, v, &type, &length, &p, &buffer, &offset) != napi_ok || type != napi_uint8_array) return 0;
  *data = p;
  *len = length;
  return 1;
}

#define VIEW_ARGS 13
#define VIEW_INTS 10

static napi_value view(napi_env env, napi_callback_info info) {
  size_t argc = VIEW_ARGS;
  napi_value argv[VIEW_ARGS];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc != VIEW_ARGS) {
    return throw_type(env, "view(bytes, out, canvasWidth, canvasHeight, width, height, orientation, storedWidth, storedHeight, flip, offsetX, offsetY, callback): 13 arguments");
  }
  unsigned char *bytes, *out;
  size_t bytes_len, out_len;
  int32_t v[VIEW_INTS];
  napi_valuetype cb_type;
  napi_typeof(env, argv[VIEW_ARGS - 1], &cb_type);
  int ok = typed_bytes(env, argv[0], &bytes, &bytes_len) && typed_bytes(env, argv[1], &out, &out_len) && cb_type == napi_function;
  for (int i = 0; ok && i < VIEW_INTS; i++) ok = napi_get_value_int32(env, argv[2 + i], &v[i]) == napi_ok;
  if (!ok) return throw_type(env, "view: expected (Uint8Array, Uint8Array, 10 integers, function)");
  Job *job = calloc(1, sizeof(Job));
  if (!job) return throw_type(env, "view: out of memory");
  job->canvas_width = v[0];
  job->canvas_height = v[1];
  job->width = v[2];
  job->height = v[3];
  job->orientation = v[4];
  job->stored_width = v[5];
  job->stored_height = v[6];
  job->flip = v[7];
  job->offset_x = v[8];
  job->offset_y = v[9];
  if (job->canvas_width <= 0 || job->canvas_height <= 0 || job->width <= 0 || job->height <= 0 || job->orientation < 1 || job->orientation > 8
      || (job->flip != 0 && job->flip != 1) || job->stored_width <= 0 || job->stored_height <= 0
      || out_len != (size_t)job->canvas_width * job->canvas_height * 3) {
    free(job);
    return throw_type(env, "view: out must be canvasWidth × canvasHeight × 3 bytes; sizes positive, orientation 1–8, flip 0 or 1");
  }
  job->bytes = bytes;
  job->bytes_len = bytes_len;
  job->out = out;
  napi_value name;
  napi_create_string_utf8(env, "casl:decode-view", NAPI_AUTO_LENGTH, &name);
  napi_create_reference(env, argv[0], 1, &job->bytes_ref);
  napi_create_reference(env, argv[1], 1, &job->out_ref);
  napi_create_reference(env, argv[VIEW_ARGS - 1], 1, &job->callback_ref);
  napi_create_async_work(env, NULL, name, execute, complete, job, &job->work);
  napi_queue_async_work(env, job->work);
  return NULL;
}

typedef struct {
  napi_async_work work;
  napi_ref callback_ref;
  char *path;
  double max_bytes;
  unsigned char *data;
  size_t size;
  int err, too_big;
} ReadJob;

static void read_execute(napi_env env, void *data) {
  (void)env;
  ReadJob *job = data;
  int fd = open(job->path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    job->err = errno;
    return;
  }
  struct stat st;
  if (fstat(fd, &st) != 0) job->err = errno;
  else if (S_ISDIR(st.st_mode)) job->err = EISDIR;
  else if ((double)st.st_size > job->max_bytes) {
    job->too_big = 1;
    job->size = (size_t)st.st_size;
  } else if (!(job->data = malloc(st.st_size > 0 ? (size_t)st.st_size : 1))) {
    job->err = ENOMEM;
  } else {
    size_t want = (size_t)st.st_size, got = 0;
    while (got < want) {
      ssize_t n = read(fd, job->data + got, want - got);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        job->err = errno;
        break;
      }
      if (n == 0) break;
      got += (size_t)n;
    }
    job->size = got;
  }
  close(fd);
}

static void free_bytes(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  free(data);
}

static const char *errno_name(int e) {
  switch (e) {
    case ENOENT: return "ENOENT";
    case EISDIR: return "EISDIR";
    case EACCES: return "EACCES";
    case ENOTDIR: return "ENOTDIR";
    case ENOMEM: return "ENOMEM";
    default: return strerror(e);
  }
}

static void read_complete(napi_env env, napi_status status, void *data) {
  ReadJob *job = data;
  napi_value args[4];
  args[0] = work_error(env, status);
  napi_get_null(env, &args[1]);
  napi_get_null(env, &args[2]);
  napi_create_double(env, (double)job->size, &args[3]);
  if (status != napi_ok) {
    free(job->data);
  } else if (job->too_big) {
    napi_create_string_utf8(env, "EFBIG", NAPI_AUTO_LENGTH, &args[2]);
  } else if (job->err) {
    napi_create_string_utf8(env, errno_name(job->err), NAPI_AUTO_LENGTH, &args[2]);
    free(job->data);
  } else if (napi_create_external_buffer(env, job->size, job->data, free_bytes, NULL, &args[1]) != napi_ok) {
    free(job->data);
    napi_create_string_utf8(env, "ENOMEM", NAPI_AUTO_LENGTH, &args[2]);
  }
  napi_ref callback_ref = job->callback_ref;
  napi_async_work work = job->work;
  free(job->path);
  free(job);
  call_back(env, callback_ref, work, 4, args);
}

static napi_value read_file(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  napi_valuetype types[3] = {napi_undefined, napi_undefined, napi_undefined};
  for (size_t i = 0; i < argc && i < 3; i++) napi_typeof(env, argv[i], &types[i]);
  if (argc != 3 || types[0] != napi_string || types[1] != napi_number || types[2] != napi_function) {
    return throw_type(env, "readFile(path: string, maxBytes: number, callback): 3 arguments");
  }
  size_t len;
  napi_get_value_string_utf8(env, argv[0], NULL, 0, &len);
  ReadJob *job = calloc(1, sizeof(ReadJob));
  char *path = malloc(len + 1);
  if (!job || !path) {
    free(job);
    free(path);
    return throw_type(env, "readFile: out of memory");
  }
  napi_get_value_string_utf8(env, argv[0], path, len + 1, &len);
  job->path = path;
  napi_get_value_double(env, argv[1], &job->max_bytes);
  napi_value name;
  napi_create_string_utf8(env, "casl:read-file", NAPI_AUTO_LENGTH, &name);
  napi_create_reference(env, argv[2], 1, &job->callback_ref);
  napi_create_async_work(env, NULL, name, read_execute, read_complete, job, &job->work);
  napi_queue_async_work(env, job->work);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "view", NAPI_AUTO_LENGTH, view, NULL, &fn);
  napi_set_named_property(env, exports, "view", fn);
  napi_create_function(env, "readFile", NAPI_AUTO_LENGTH, read_file, NULL, &fn);
  napi_set_named_property(env, exports, "readFile", fn);
  /* view() writes every byte of `out`: an older build needs a zeroed canvas. */
  napi_value yes;
  napi_get_boolean(env, true, &yes);
  napi_set_named_property(env, exports, "writesWholeCanvas", yes);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
