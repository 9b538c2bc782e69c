/* Per-socket TCP congestion control for DWCP streams: setsockopt(TCP_CONGESTION) on a socket's fd,
 * and the kernel's per-socket counters (TCP_INFO) the stream-count controller measures goodput with.
 * A tiny Node-API addon, compiled on first use by congestion.ts (Node has no API for either). */
#include <node_api.h>
#include <netinet/in.h>
#include <linux/tcp.h>
#include <string.h>
#include <errno.h>
#include <sys/socket.h>

/* set(fd, name) -> name in effect afterwards; throws with the errno text on failure. */
static napi_value set_cc(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd = -1;
  char name[32] = {0};
  size_t len = 0;
  if (argc < 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok ||
      napi_get_value_string_utf8(env, argv[1], name, sizeof name, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "set(fd: number, name: string)");
    return NULL;
  }
  if (setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, name, (socklen_t)len) != 0) {
    napi_throw_error(env, NULL, strerror(errno));
    return NULL;
  }
  char now[32] = {0};
  socklen_t nl = sizeof now - 1;
  if (getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, now, &nl) != 0) {
    napi_throw_error(env, NULL, strerror(errno));
    return NULL;
  }
  napi_value out;
  napi_create_string_utf8(env, now, strnlen(now, sizeof now), &out);
  return out;
}

/* info(fd) -> [bytes_acked, rtt_us, snd_cwnd, total_retrans, notsent_bytes, delivery_rate B/s];
 * throws with the errno text on failure. */
static napi_value tcp_info(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd = -1;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok) {
    napi_throw_type_error(env, NULL, "info(fd: number)");
    return NULL;
  }
  struct tcp_info ti;
  memset(&ti, 0, sizeof ti);
  socklen_t len = sizeof ti;
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0) {
    napi_throw_error(env, NULL, strerror(errno));
    return NULL;
  }
  double v[6] = {(double)ti.tcpi_bytes_acked, (double)ti.tcpi_rtt,     (double)ti.tcpi_snd_cwnd,
                 (double)ti.tcpi_total_retrans, (double)ti.tcpi_notsent_bytes, (double)ti.tcpi_delivery_rate};
  napi_value out;
  napi_create_array_with_length(env, 6, &out);
  for (uint32_t i = 0; i < 6; i++) {
    napi_value n;
    napi_create_double(env, v[i], &n);
    napi_set_element(env, out, i, n);
  }
  return out;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "set", NAPI_AUTO_LENGTH, set_cc, NULL, &fn);
  napi_set_named_property(env, exports, "set", fn);
  napi_value fi;
  napi_create_function(env, "info", NAPI_AUTO_LENGTH, tcp_info, NULL, &fi);
  napi_set_named_property(env, exports, "info", fi);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
