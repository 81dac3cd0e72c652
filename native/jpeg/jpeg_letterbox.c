// casl's JPEG fast path: decode + orient + antialiased resize + letterbox of
// one JPEG in a single call on a libuv worker thread, with libjpeg-turbo's
// DCT scaling (Pillow's draft mode, sharp's shrink on load). It exists
// because sharp's fixed cost per image (building a libvips pipeline, handing
// work between its threads) was most of the CPU a 640×480 → 128×128
// letterbox took (README: Decoding and COCO JSON).
//
// It decodes only what it can decode exactly as the sharp path would: 8-bit
// baseline or progressive JPEG in YCbCr, RGB or grayscale, without an
// embedded ICC profile, and without a single libjpeg warning. Anything else
// (CMYK/YCCK, ICC profiles, truncated or corrupt data, 12-bit) returns
// "declined" with the reason, and the caller decodes it with sharp, which
// also words the error of a broken file.
//
// JS API (src/io/decode.ts):
//   letterbox(jpeg: Uint8Array, out: Uint8Array, size, width, height,
//             orientation, storedWidth, storedHeight,
//             callback(err, declined: string | null))
// `out` is the zeroed size × size × 3 canvas; width × height is the resized
// content in the oriented frame (the letterbox plan), orientation the EXIF
// value to apply (1 = none), storedWidth × storedHeight the size the caller
// read from the header and planned with (libjpeg must agree). The callback
// gets null when `out` holds the image, or the reason the fast path declined.
#include <node_api.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>

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
  napi_ref jpeg_ref, out_ref, callback_ref;
  const unsigned char *jpeg;
  size_t jpeg_len;
  unsigned char *out;
  int size, width, height, orientation, stored_width, stored_height;
  char declined[JMSG_LENGTH_MAX + 64];
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

/* Resizes src (sw × sh RGB) to dw × dh, stored frame, into dst. */
static int resize(const unsigned char *src, int sw, int sh, unsigned char *dst, int dw, int dh) {
  Coeffs cx = {0}, cy = {0};
  float *mid = malloc(sizeof(float) * (size_t)dw * sh * 3);
  float *restrict acc = malloc(sizeof(float) * (size_t)dw * 3);
  int ok = mid && acc && make_coeffs(sw, dw, &cx) && make_coeffs(sh, dh, &cy);
  if (ok) {
    for (int y = 0; y < sh; y++) {
      const unsigned char *row = src + (size_t)y * sw * 3;
      float *m = mid + (size_t)y * dw * 3;
      for (int x = 0; x < dw; x++) {
        const float *w = cx.weights + x * cx.taps;
        const unsigned char *p = row + cx.first[x] * 3;
        float r = 0, g = 0, b = 0;
        for (int k = 0; k < cx.count[x]; k++, p += 3) {
          r += w[k] * p[0];
          g += w[k] * p[1];
          b += w[k] * p[2];
        }
        m[x * 3] = r;
        m[x * 3 + 1] = g;
        m[x * 3 + 2] = b;
      }
    }
    /* Row by row, so the inner loop runs over a whole row and vectorises. */
    for (int y = 0; y < dh; y++) {
      const float *w = cy.weights + y * cy.taps;
      size_t n = (size_t)dw * 3;
      for (size_t i = 0; i < n; i++) acc[i] = 0.5f;
      for (int k = 0; k < cy.count[y]; k++) {
        const float *restrict m = mid + (size_t)(cy.first[y] + k) * n;
        float wk = w[k];
        for (size_t i = 0; i < n; i++) acc[i] += wk * m[i];
      }
      unsigned char *d = dst + (size_t)y * n;
      for (size_t i = 0; i < n; i++) d[i] = acc[i] <= 0 ? 0 : acc[i] >= 255 ? 255 : (unsigned char)acc[i];
    }
  }
  free(mid);
  free(acc);
  free_coeffs(&cx);
  free_coeffs(&cy);
  return ok;
}

/* Copies the stored-frame image (sw × sh) into the top-left of the size × size
 * canvas with EXIF orientation o applied: oriented pixel (x, y) comes from
 * stored pixel (sx, sy). */
static void orient_into(const unsigned char *src, int sw, int sh, int o, unsigned char *out, int size) {
  int ow = o >= 5 ? sh : sw;
  int oh = o >= 5 ? sw : sh;
  for (int y = 0; y < oh; y++) {
    unsigned char *d = out + (size_t)y * size * 3;
    if (o == 1) {
      memcpy(d, src + (size_t)y * sw * 3, (size_t)sw * 3);
      continue;
    }
    for (int x = 0; x < ow; x++) {
      int sx, sy;
      switch (o) {
        case 2: sx = sw - 1 - x; sy = y; break;
        case 3: sx = sw - 1 - x; sy = sh - 1 - y; break;
        case 4: sx = x; sy = sh - 1 - y; break;
        case 5: sx = y; sy = x; break;
        case 6: sx = y; sy = sh - 1 - x; break;
        case 7: sx = sw - 1 - y; sy = sh - 1 - x; break;
        default: sx = sw - 1 - y; sy = x; break; /* 8 */
      }
      memcpy(d + x * 3, src + ((size_t)sy * sw + sx) * 3, 3);
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

static void execute(napi_env env, void *data) {
  (void)env;
  Job *job = data;
  struct jpeg_decompress_struct cinfo;
  ErrorManager err;
  /* volatile: assigned between setjmp and a possible longjmp. */
  unsigned char *volatile pixels = NULL;
  unsigned char *volatile resized = NULL;
  JOCTET *icc = NULL; /* read and freed with no libjpeg call between */
  unsigned int icc_len = 0;
  cinfo.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = on_error;
  err.pub.emit_message = on_message;
  if (setjmp(err.jump)) {
    snprintf(job->declined, sizeof job->declined, "libjpeg: %s", err.message);
    jpeg_destroy_decompress(&cinfo);
    free(pixels);
    free(resized);
    return;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, job->jpeg, (unsigned long)job->jpeg_len);
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
    return;
  }
  int transposed = job->orientation >= 5;
  int tw = transposed ? job->height : job->width; /* target, stored frame */
  int th = transposed ? job->width : job->height;
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
    return;
  }
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = pixels + (size_t)cinfo.output_scanline * sw * 3;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  const unsigned char *stored = pixels;
  if (sw != tw || sh != th) {
    resized = malloc((size_t)tw * th * 3);
    if (!resized || !resize(pixels, sw, sh, resized, tw, th)) {
      snprintf(job->declined, sizeof job->declined, "out of memory resizing %d×%d to %d×%d", sw, sh, tw, th);
      free(pixels);
      free(resized);
      return;
    }
    stored = resized;
  }
  orient_into(stored, tw, th, job->orientation, job->out, job->size);
  free(pixels);
  free(resized);
}

static void complete(napi_env env, napi_status status, void *data) {
  Job *job = data;
  napi_value callback, global, args[2];
  napi_get_reference_value(env, job->callback_ref, &callback);
  napi_get_global(env, &global);
  napi_get_null(env, &args[0]);
  if (status != napi_ok) {
    napi_value msg;
    napi_create_string_utf8(env, "casl jpeg addon: the work was cancelled", NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, NULL, msg, &args[0]);
    napi_get_null(env, &args[1]);
  } else if (job->declined[0]) {
    napi_create_string_utf8(env, job->declined, NAPI_AUTO_LENGTH, &args[1]);
  } else {
    napi_get_null(env, &args[1]);
  }
  napi_delete_reference(env, job->jpeg_ref);
  napi_delete_reference(env, job->out_ref);
  napi_delete_reference(env, job->callback_ref);
  napi_delete_async_work(env, job->work);
  free(job);
  napi_call_function(env, global, callback, 2, args, NULL);
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

static napi_value letterbox(napi_env env, napi_callback_info info) {
  size_t argc = 9;
  napi_value argv[9];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc != 9) return throw_type(env, "letterbox(jpeg, out, size, width, height, orientation, storedWidth, storedHeight, callback): 9 arguments");
  Job *job = calloc(1, sizeof(Job));
  if (!job) return throw_type(env, "letterbox: out of memory");
  unsigned char *jpeg, *out;
  size_t jpeg_len, out_len;
  int32_t ints[6];
  napi_valuetype cb_type;
  napi_typeof(env, argv[8], &cb_type);
  int ok = typed_bytes(env, argv[0], &jpeg, &jpeg_len) && typed_bytes(env, argv[1], &out, &out_len) && cb_type == napi_function;
  for (int i = 0; ok && i < 6; i++) ok = napi_get_value_int32(env, argv[2 + i], &ints[i]) == napi_ok;
  if (!ok) {
    free(job);
    return throw_type(env, "letterbox: expected (Uint8Array, Uint8Array, 6 integers, function)");
  }
  job->size = ints[0];
  job->width = ints[1];
  job->height = ints[2];
  job->orientation = ints[3];
  job->stored_width = ints[4];
  job->stored_height = ints[5];
  if (job->size <= 0 || job->width <= 0 || job->height <= 0 || job->width > job->size || job->height > job->size
      || job->orientation < 1 || job->orientation > 8 || out_len != (size_t)job->size * job->size * 3) {
    free(job);
    return throw_type(env, "letterbox: out must be size × size × 3 bytes, 0 < width, height <= size, orientation 1–8");
  }
  job->jpeg = jpeg;
  job->jpeg_len = jpeg_len;
  job->out = out;
  napi_value name;
  napi_create_string_utf8(env, "casl:jpeg-letterbox", NAPI_AUTO_LENGTH, &name);
  napi_create_reference(env, argv[0], 1, &job->jpeg_ref);
  napi_create_reference(env, argv[1], 1, &job->out_ref);
  napi_create_reference(env, argv[8], 1, &job->callback_ref);
  napi_create_async_work(env, NULL, name, execute, complete, job, &job->work);
  napi_queue_async_work(env, job->work);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "letterbox", NAPI_AUTO_LENGTH, letterbox, NULL, &fn);
  napi_set_named_property(env, exports, "letterbox", fn);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
