// A bare TCP relay in native code, on Node's own libuv loop (bench/relay-variants.js, variants
// `native` and `native+rfq`; an experiment for issue 17, not part of pgwarden).
//
//   relay(clientFd, serverFd, onEnd[, onReady]) -> undefined
//
// JavaScript accepts the client and connects to the server, keeps both sockets from reading,
// and hands their fds over. The addon dup()s both fds (F_DUPFD_CLOEXEC), so from then on it owns
// a descriptor of each socket of its own; the caller then destroy()s its net.Sockets, which
// closes the original fds (libuv removes them from its epoll set first) without touching the
// connections, since the dups keep them open. Bytes are then relayed with one uv_poll_t per fd:
// one recv() per readable event into a buffer shared by all sessions of the thread, and a send()
// straight away; only what send() could not take is copied into a buffer of the direction's own
// (so an idle session holds no buffer), the source's readable interest is dropped and the
// destination's writable interest raised until that buffer has drained (backpressure).
//
// End of a direction (recv() returns 0): the FIN is passed on with shutdown(SHUT_WR) on the other
// socket once that direction's buffer is empty, and the other direction goes on (half-close).
// The session ends when both directions have ended, or at once on any error (recv/send/poll);
// then both polls are closed, both fds closed in the close callbacks, and onEnd(err, bytes
// client->server, bytes server->client, ReadyForQuery count, last transaction status) called —
// the only call into JavaScript, unless onReady is given: then onReady(status) is called for
// every ReadyForQuery the server sends (a boundary a session could act on).
//
// Message boundaries: each direction runs the same 5-byte-header walk as pgwarden's
// src/protocol/frame-tracker.ts (type byte, big-endian Int32 length including itself), plus the
// untyped start-up: the client's first message has no type byte, and after an SSLRequest or
// GSSENCRequest the server answers one bare byte ('N' or 'S'/'G'), after which the client sends
// another untyped message. If encryption is accepted ('S'/'G') the stream can no longer be read
// and tracking stops (the bytes are still relayed).
#define NAPI_VERSION 8
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#define BUF_SIZE (16 * 1024) // the most one recv() takes: HAProxy's default tune.bufsize
#define SSL_REQUEST_CODE 80877103
#define GSSENC_REQUEST_CODE 80877104

enum { CLIENT = 0, SERVER = 1 };

/** The 5-byte-header walk of one direction. */
typedef struct {
  uint32_t need;       // body bytes of the current message still to come
  uint32_t length;     // length field being assembled
  uint8_t header;      // header bytes seen so far (0: at a boundary)
  uint8_t header_size; // 5 (typed) or 4 (untyped start-up message)
  uint8_t type;
  uint8_t want_status;  // the next body byte is a ReadyForQuery's status
  uint8_t want_code;    // untyped message: its first 4 body bytes are the request code
  uint32_t code;
  uint8_t bare_bytes;   // server side: one-byte answers (to SSL/GSS requests) expected
  uint8_t broken;       // boundaries unknown from here on
} tracker_t;

/** One direction: from fd[i] to the other fd. */
typedef struct {
  char *pending;   // bytes read that the other fd has not taken yet, or NULL
  size_t off, len; // pending[off, len) still to send
  uint64_t bytes;  // relayed so far
  int eof;         // recv() returned 0
  int shut;        // FIN passed on (shutdown(SHUT_WR) on the other fd)
  tracker_t tr;
} dir_t;

typedef struct {
  napi_env env;
  napi_ref on_end, on_ready; // on_ready may be NULL
  napi_async_context async;
  uv_poll_t poll[2];
  int fd[2];
  int events[2]; // the interest each poll has now
  dir_t dir[2];  // dir[i]: from fd[i] to fd[1 - i]
  int closing, open_handles, error;
  uint64_t ready_count;
  uint8_t status;
} relay_t;

static void on_poll(uv_poll_t *poll, int status, int events);

// Every read lands here and is sent on at once. Poll callbacks never nest (JavaScript called from
// track() cannot make a relay read), so one buffer per thread serves all its sessions.
static _Thread_local char scratch[BUF_SIZE];

// ---- message boundaries -----------------------------------------------------------------------

static void ready_for_query(relay_t *r, uint8_t status);

/** Feeds `n` bytes of direction `side` to its tracker; a ReadyForQuery reaches ready_for_query(). */
static void track(relay_t *r, int side, const uint8_t *p, size_t n) {
  tracker_t *t = &r->dir[side].tr;
  size_t i = 0;
  while (i < n && !t->broken) {
    if (t->need > 0) {
      if (t->want_status) {
        t->want_status = 0;
        ready_for_query(r, p[i]);
      }
      if (t->want_code) { // untyped client message: collect the request code
        t->code = (t->code << 8) | p[i];
        if (--t->want_code == 0 && (t->code == SSL_REQUEST_CODE || t->code == GSSENC_REQUEST_CODE)) {
          r->dir[SERVER].tr.bare_bytes++;
          t->header_size = 4; // the message after the answer is untyped again
        }
        t->need--, i++;
        continue;
      }
      size_t take = n - i < t->need ? n - i : t->need;
      t->need -= take, i += take;
      continue;
    }
    if (t->bare_bytes > 0) { // server: the one-byte answer to an SSL/GSS request
      t->bare_bytes--;
      if (p[i++] != 'N') t->broken = r->dir[CLIENT].tr.broken = 1; // encrypted from here: unreadable
      continue;
    }
    uint8_t b = p[i++];
    if (t->header == 0 && t->header_size == 5) {
      t->type = b, t->length = 0, t->header = 1;
      continue;
    }
    t->length = (t->length << 8) | b;
    if (++t->header < t->header_size) continue;
    t->header = 0;
    if (t->length < 4) {
      t->broken = 1;
      break;
    }
    t->need = t->length - 4;
    if (t->header_size == 4) { // untyped start-up message; typed ones follow unless it asks for TLS/GSS
      t->header_size = 5;
      t->code = 0;
      t->want_code = t->need >= 4 ? 4 : 0;
    } else if (side == SERVER && t->type == 'Z') {
      t->want_status = t->need > 0;
    }
  }
}

// ---- calls into JavaScript --------------------------------------------------------------------

/** Calls `ref` with argv inside a callback scope (so nextTicks and microtasks run after it). */
static void call_js(relay_t *r, napi_ref ref, size_t argc, napi_value *argv) {
  napi_value fn, global, result;
  napi_get_reference_value(r->env, ref, &fn);
  napi_get_global(r->env, &global);
  if (napi_make_callback(r->env, r->async, global, fn, argc, argv, &result) == napi_pending_exception) {
    napi_value err;
    napi_get_and_clear_last_exception(r->env, &err);
    napi_fatal_exception(r->env, err); // to 'uncaughtException', as any throwing callback
  }
}

static void ready_for_query(relay_t *r, uint8_t status) {
  r->ready_count++;
  r->status = status;
  if (!r->on_ready || r->closing) return;
  napi_handle_scope scope;
  napi_open_handle_scope(r->env, &scope);
  napi_value arg;
  napi_create_uint32(r->env, status, &arg);
  call_js(r, r->on_ready, 1, &arg);
  napi_close_handle_scope(r->env, scope);
}

// ---- the relay --------------------------------------------------------------------------------

/** Both polls are closed: close the fds, report, free. */
static void on_closed(uv_handle_t *handle) {
  relay_t *r = handle->data;
  if (--r->open_handles > 0) return;
  close(r->fd[CLIENT]);
  close(r->fd[SERVER]);
  free(r->dir[CLIENT].pending);
  free(r->dir[SERVER].pending);
  napi_env env = r->env;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value argv[5];
  if (r->error) {
    napi_value code, msg;
    napi_create_string_utf8(env, uv_err_name(r->error), NAPI_AUTO_LENGTH, &code);
    napi_create_string_utf8(env, uv_strerror(r->error), NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, code, msg, &argv[0]);
  } else {
    napi_get_null(env, &argv[0]);
  }
  napi_create_double(env, (double)r->dir[CLIENT].bytes, &argv[1]);
  napi_create_double(env, (double)r->dir[SERVER].bytes, &argv[2]);
  napi_create_double(env, (double)r->ready_count, &argv[3]);
  napi_create_uint32(env, r->status, &argv[4]);
  call_js(r, r->on_end, 5, argv);
  napi_close_handle_scope(env, scope);
  napi_delete_reference(env, r->on_end);
  if (r->on_ready) napi_delete_reference(env, r->on_ready);
  napi_async_destroy(env, r->async);
  free(r);
}

/** Ends the session (err: a negative errno, or 0). Idempotent. */
static void finish(relay_t *r, int err) {
  if (r->closing) return;
  r->closing = 1;
  r->error = err;
  for (int i = 0; i < 2; i++) uv_close((uv_handle_t *)&r->poll[i], on_closed); // stops polling too
}

/** Gives each poll the interest the two directions need now (an epoll_ctl only on change). */
static void update_polls(relay_t *r) {
  for (int i = 0; i < 2; i++) {
    dir_t *in = &r->dir[i], *out = &r->dir[1 - i]; // in: read from fd[i]; out: written to fd[i]
    int want = 0;
    if (!in->eof && !in->pending) want |= UV_READABLE; // reading waits while its data is pending
    if (out->pending) want |= UV_WRITABLE;
    if (want == r->events[i]) continue;
    r->events[i] = want;
    int rc = want ? uv_poll_start(&r->poll[i], want, on_poll) : uv_poll_stop(&r->poll[i]);
    if (rc < 0) return finish(r, rc);
  }
}

/** send()s until all is sent or the socket is full: the bytes sent, or -errno. */
static ssize_t send_some(int fd, const char *p, size_t n) {
  size_t sent = 0;
  while (sent < n) {
    ssize_t k = send(fd, p + sent, n - sent, MSG_NOSIGNAL);
    if (k < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break; // the rest when it is writable
      return -errno;
    }
    sent += k;
  }
  return sent;
}

/** Sends direction `side`'s pending bytes; passes its FIN on once none are left. 0 or -errno. */
static int flush(relay_t *r, int side) {
  dir_t *d = &r->dir[side];
  int to = r->fd[1 - side];
  if (d->pending) {
    ssize_t k = send_some(to, d->pending + d->off, d->len - d->off);
    if (k < 0) return k;
    if ((d->off += k) < d->len) return 0;
    free(d->pending);
    d->pending = NULL;
    d->off = d->len = 0;
  }
  if (d->eof && !d->shut) {
    d->shut = 1;
    if (shutdown(to, SHUT_WR) < 0 && errno != ENOTCONN) return -errno;
  }
  return 0;
}

/** One recv() from fd[side], then straight on to the other fd. 0 or -errno. */
static int pump(relay_t *r, int side) {
  dir_t *d = &r->dir[side];
  ssize_t n;
  do n = recv(r->fd[side], scratch, BUF_SIZE, 0);
  while (n < 0 && errno == EINTR);
  if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
  if (n == 0) {
    d->eof = 1; // half-close: flush() passes the FIN on
    return flush(r, side);
  }
  d->bytes += n;
  track(r, side, (const uint8_t *)scratch, n);
  ssize_t k = send_some(r->fd[1 - side], scratch, n);
  if (k < 0) return k;
  if (k < n) { // keep the rest; update_polls() then waits for writable instead of reading more
    if (!(d->pending = malloc(n - k))) return UV_ENOMEM;
    memcpy(d->pending, scratch + k, n - k);
    d->off = 0;
    d->len = n - k;
  }
  return 0;
}

static void on_poll(uv_poll_t *poll, int status, int events) {
  relay_t *r = poll->data;
  if (r->closing) return;
  int side = poll == &r->poll[CLIENT] ? CLIENT : SERVER;
  int err = status;
  if (err == UV_EBADF) { // libuv reports EPOLLERR as EBADF: the socket's own error is more telling
    int so_error = 0;
    socklen_t len = sizeof so_error;
    if (getsockopt(r->fd[side], SOL_SOCKET, SO_ERROR, &so_error, &len) == 0 && so_error) err = -so_error;
  }
  // Writable first: drain what waits for this fd, which lets the other side be read again.
  if (!err && (events & UV_WRITABLE)) err = flush(r, 1 - side);
  if (!err && (events & UV_READABLE) && !r->dir[side].pending && !r->closing) err = pump(r, side);
  if (r->closing) return; // an onReady callback may not end it, but be safe
  if (err) return finish(r, err);
  if (r->dir[CLIENT].shut && r->dir[SERVER].shut) return finish(r, 0); // both directions ended
  update_polls(r);
}

// ---- relay(clientFd, serverFd, onEnd[, onReady]) ----------------------------------------------

static void free_relay(uv_handle_t *handle) { free(handle->data); }

static napi_value js_throw(napi_env env, const char *msg) {
  napi_throw_error(env, NULL, msg);
  return NULL;
}

static napi_value relay(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4], undefined;
  napi_get_undefined(env, &undefined);
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fds[2];
  napi_valuetype t;
  if (argc < 3 || napi_get_value_int32(env, argv[0], &fds[0]) != napi_ok ||
      napi_get_value_int32(env, argv[1], &fds[1]) != napi_ok || fds[0] < 0 || fds[1] < 0)
    return js_throw(env, "relay(clientFd, serverFd, onEnd[, onReady]): two fds expected");
  if (napi_typeof(env, argv[2], &t) != napi_ok || t != napi_function) return js_throw(env, "onEnd must be a function");
  int has_ready = argc > 3 && napi_typeof(env, argv[3], &t) == napi_ok && t == napi_function;

  uv_loop_t *loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) return js_throw(env, "no libuv loop");
  relay_t *r = calloc(1, sizeof *r);
  if (!r) return js_throw(env, "out of memory");
  r->env = env;
  r->status = 'I';
  r->dir[CLIENT].tr.header_size = 4; // the client starts with an untyped message
  r->dir[SERVER].tr.header_size = 5;
  r->fd[0] = r->fd[1] = -1;
  for (int i = 0; i < 2; i++) {
    // Our own descriptor of each socket: the caller closes its fds (destroys its sockets) next.
    // O_NONBLOCK lives in the open file description, so the dup is non-blocking like libuv's fd.
    r->fd[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 0);
    if (r->fd[i] < 0 || fcntl(r->fd[i], F_SETFL, fcntl(r->fd[i], F_GETFL) | O_NONBLOCK) < 0) {
      int e = errno;
      for (int j = 0; j < 2; j++)
        if (r->fd[j] >= 0) close(r->fd[j]);
      free(r);
      return js_throw(env, e == EBADF ? "bad fd" : strerror(e));
    }
  }
  for (int i = 0; i < 2; i++) {
    int rc = uv_poll_init_socket(loop, &r->poll[i], r->fd[i]);
    if (rc < 0) { // only poll[0] can have been initialised (never started): close it, free r after
      if (i == 1) uv_close((uv_handle_t *)&r->poll[0], free_relay);
      close(r->fd[0]);
      close(r->fd[1]);
      if (i == 0) free(r);
      return js_throw(env, uv_strerror(rc));
    }
    r->poll[i].data = r;
  }
  // From here the relay cannot fail synchronously: errors end it through onEnd.
  r->open_handles = 2;
  napi_create_reference(env, argv[2], 1, &r->on_end);
  if (has_ready) napi_create_reference(env, argv[3], 1, &r->on_ready);
  napi_value name;
  napi_create_string_utf8(env, "NativeRelay", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, NULL, name, &r->async);
  update_polls(r);
  return undefined;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "relay", NAPI_AUTO_LENGTH, relay, NULL, &fn);
  napi_set_named_property(env, exports, "relay", fn);
  return exports;
}
