/*
 * lua_ws.c -- "gust.websocket": one WebSocket connection over a
 * gust_stream_t, for gust.websocket's WebSocketHandler (server side) and
 * its client, plus the handshake helpers core.ws_negotiate, core.ws_offer
 * and core.ws_connect.
 *
 * The C side reads and parses (ws_frame.c) as bytes arrive, whatever Lua is
 * doing: pings are answered, pongs stop the ping timeout, and the close
 * handshake runs here. Messages (and pongs, and pings when asked for) go
 * into a queue in arrival order; ws:receive() takes them one by one, so the
 * connection's task handles them in order however long each one takes.
 * While the queue is long, reading stops, so a peer cannot outrun a slow
 * handler by more than the queue's mark.
 *
 * Writes go to the stream's output at once. A writer in the connection's
 * own task yields while more than the high mark is unsent; others (a
 * broadcast) never wait, and a connection that finds more than max_buffer
 * unsent when asked to write is closed with 1008 (DESIGN 4.9).
 *
 * Closing: a close frame from the peer is answered and the TCP connection
 * closed once the answer is out. A close we start (ws:close(), or a failure:
 * 1002, 1007, 1008, 1009, 1011) waits up to close_timeout for the peer's
 * close frame or EOF; after a failure the input is discarded and a plain
 * socket is shut for writing once the close frame is out, so the peer sees
 * it and then EOF rather than a reset.
 *
 * The userdata holds all of it. It is anchored in the registry while the
 * stream is open or a coroutine waits on it, since the stream's callbacks
 * and the timers point at it; its timers are armed only while the stream is
 * open, so nothing touches the event base after the server closed every
 * stream.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <lauxlib.h>
#include <openssl/ssl.h>

#include "core/mem.h"
#include "core/stream.h"
#include "core/tls.h"
#include "core/ws_frame.h"
#include "lua_core.h"
#include "lua_sched.h"
#include "lua_stream.h"
#include "lua_ws.h"

#define WS_MT "gust.websocket"

#define DEFAULT_MAX_BUFFER (4 * 1024 * 1024)
#define DEFAULT_HIGH_MARK (64 * 1024)
#define DEFAULT_CLOSE_TIMEOUT GUST_CLOSE_TIMEOUT /* the drain waits as long (core.h) */
/* Reading pauses while this much waits for Lua. */
#define QUEUE_MAX_BYTES (1024 * 1024)
#define QUEUE_MAX_ITEMS 256

enum { K_TEXT, K_BINARY, K_PING, K_PONG };
static const char *const kind_names[] = {"text", "binary", "ping", "pong"};

/* What to do once the output is out. */
enum { AFTER_NOTHING, AFTER_CLOSE, AFTER_LINGER };

/* A server answers the peer's close, or fails the connection, only once
 * its handler has had every message that came before (see must_defer). */
enum { DEFER_NONE, DEFER_CLOSE, DEFER_FAIL };

typedef struct ws_item {
    struct ws_item *next;
    int kind;
    size_t len;
    char data[];
} ws_item_t;

static const char ws_tag = 'W'; /* lws_t.tag: see gust_lua_checktag */

typedef struct lws {
    const void *tag; /* &ws_tag */
    gust_server_t *server;
    gust_stream_t *st; /* our reference; NULL once the connection ended */
    gust_ws_codec_t codec;
    int self_ref, read_ref, write_ref;
    /* The coroutine that reads, anchored from its first wait until another
     * takes over or the connection is collected: a connection's messages
     * are nearly always read by one task, which then waits without a new
     * registry ref per message. read_ref is reader_ref while it waits. */
    int reader_ref;
    lua_State *reader;
    const lua_State *owner; /* the coroutine that made it: compared, never used */
    ws_item_t *head, *tail;
    size_t queued_bytes, queued_items;
    unsigned client : 1, deliver_pings : 1, deliver_pongs : 1, sent_close : 1, got_close : 1,
        failed : 1, ended : 1, paused : 1, processing : 1, reprocess : 1, shut : 1, ping_armed : 1,
        pong_armed : 1, close_armed : 1, busy : 1, counted : 1;
    int after_drain;
    int deferred, deferred_code; /* a close or failure waiting for Lua to catch up */
    const char *deferred_err;
    int sent_code, peer_code;
    char sent_reason[GUST_WS_MAX_CLOSE_REASON + 1], peer_reason[GUST_WS_MAX_CLOSE_REASON + 1];
    size_t sent_reason_len, peer_reason_len;
    size_t max_buffer, high_mark;
    double ping_interval, ping_timeout, close_timeout;
    struct event ping_ev, pong_ev, close_ev;
} lws_t;

static void process(lws_t *ws);

/* ---- small helpers ------------------------------------------------------- */

static int is_open(const lws_t *ws) { return ws->st && !ws->st->closed; }

static void cancel_timers(lws_t *ws) {
    if (ws->ping_armed)
        event_del(&ws->ping_ev);
    if (ws->pong_armed)
        event_del(&ws->pong_ev);
    if (ws->close_armed)
        event_del(&ws->close_ev);
    ws->ping_armed = ws->pong_armed = ws->close_armed = 0;
}

static void arm(lws_t *ws, struct event *ev, double secs) {
    if (!is_open(ws) || secs <= 0)
        return;
    struct timeval tv = gust_timeval(secs);
    event_add(ev, &tv);
    if (ev == &ws->ping_ev)
        ws->ping_armed = 1;
    else if (ev == &ws->pong_ev)
        ws->pong_armed = 1;
    else
        ws->close_armed = 1;
}

static lua_State *waiter(gust_server_t *s, int ref) {
    lua_rawgeti(s->L, LUA_REGISTRYINDEX, ref);
    lua_State *co = lua_tothread(s->L, -1);
    lua_pop(s->L, 1);
    return co;
}

static void wake(gust_server_t *s, int *ref, int n) {
    gust_run_t run = {*ref, GUST_RUN_STACK, n, NULL};
    *ref = LUA_NOREF;
    gust_sched_push(s, run);
}

/* The waiting reader, woken with the n values pushed on its stack; the
 * ref stays the connection's. */
static void wake_reader(lws_t *ws, int n) {
    gust_run_t run = {ws->read_ref, GUST_RUN_KEPT, n, NULL};
    ws->read_ref = LUA_NOREF;
    gust_sched_push(ws->server, run);
}

/* Lets go of the reader's anchor (a wake-up still queued takes it over). */
static void drop_reader(lua_State *L, lws_t *ws) {
    if (ws->reader_ref != LUA_NOREF && !gust_sched_disown(ws->server->sched, ws->reader_ref))
        luaL_unref(L, LUA_REGISTRYINDEX, ws->reader_ref);
    ws->reader_ref = LUA_NOREF;
    ws->reader = NULL;
}

/* Unanchors once neither the stream nor a waiter needs the userdata. */
static void maybe_unanchor(lws_t *ws) {
    gust_server_t *s = ws->server;
    if (ws->self_ref == LUA_NOREF || !s->L || is_open(ws) || ws->read_ref != LUA_NOREF ||
        ws->write_ref != LUA_NOREF)
        return;
    luaL_unref(s->L, LUA_REGISTRYINDEX, ws->self_ref);
    ws->self_ref = LUA_NOREF;
}

static void anchor(lua_State *L, lws_t *ws, int idx) {
    if (ws->self_ref != LUA_NOREF)
        return;
    lua_pushvalue(L, idx);
    ws->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

/* The close code and reason the connection ended with: the peer's when it
 * sent a close frame, else ours, else 1006 (dropped without a close). */
static int push_close_info(lua_State *L, const lws_t *ws) {
    if (ws->got_close) {
        lua_pushinteger(L, ws->peer_code);
        lua_pushlstring(L, ws->peer_reason, ws->peer_reason_len);
    } else if (ws->sent_close) {
        lua_pushinteger(L, ws->sent_code ? ws->sent_code : GUST_WS_CLOSE_NO_STATUS);
        lua_pushlstring(L, ws->sent_reason, ws->sent_reason_len);
    } else {
        lua_pushinteger(L, GUST_WS_CLOSE_ABNORMAL);
        lua_pushliteral(L, "");
    }
    return 2;
}

/* ---- the end of a connection ----------------------------------------------- */

/* gust_websocket_connections_open counts server connections until their
 * stream closes (which is before the server drops its metrics). */
static void uncount(lws_t *ws) {
    if (!ws->counted)
        return;
    ws->counted = 0;
    if (ws->server->core->metrics)
        GUST_METRICS_BUMP(gust_core_slot(ws->server->core)->websockets_open, -1);
}

/* Drops our stream reference; the stream must be closed already, or is
 * closed by this when ours is the last reference. */
static void release_stream(lws_t *ws) {
    gust_stream_t *st = ws->st;
    if (!st)
        return;
    cancel_timers(ws);
    uncount(ws);
    ws->st = NULL;
    st->on_read = st->on_drain = st->on_close = NULL;
    st->arg = NULL;
    gust_stream_free(st);
}

/* The stream is closed and its input parsed: tell the waiters. */
static void finish(lws_t *ws) {
    gust_server_t *s = ws->server;
    if (ws->ended)
        return;
    ws->ended = 1;
    cancel_timers(ws);
    if (s->L) {
        if (ws->read_ref != LUA_NOREF) {
            lua_State *co = ws->reader;
            lua_pushnil(co);
            push_close_info(co, ws);
            wake_reader(ws, 3);
        }
        if (ws->write_ref != LUA_NOREF) {
            lua_State *co = waiter(s, ws->write_ref);
            lua_pushnil(co);
            lua_pushliteral(co, "closed");
            wake(s, &ws->write_ref, 2);
        }
    }
    release_stream(ws);
    maybe_unanchor(ws);
}

/* Acts on after_drain once nothing is left to send. */
static void after_drain(lws_t *ws) {
    gust_stream_t *st = ws->st;
    if (!is_open(ws) || ws->after_drain == AFTER_NOTHING || gust_stream_pending(st) > 0)
        return;
    if (ws->after_drain == AFTER_CLOSE || st->tls.ssl) {
        gust_stream_close(st, NULL);
        return;
    }
    /* AFTER_LINGER: the peer gets our close frame and then EOF; its own
     * close (or the timer) ends the connection. */
    if (!ws->shut) {
        ws->shut = 1;
        shutdown(st->fd, SHUT_WR);
        gust_stream_read_start(st);
    }
}

/* ---- writing ------------------------------------------------------------- */

/* Sends a close frame (once) and starts waiting for the peer's. */
static void send_close(lws_t *ws, int code, const char *reason, size_t len) {
    if (ws->sent_close)
        return;
    ws->sent_close = 1;
    ws->sent_code = code;
    if (len > GUST_WS_MAX_CLOSE_REASON)
        len = GUST_WS_MAX_CLOSE_REASON;
    memcpy(ws->sent_reason, reason, len);
    ws->sent_reason_len = len;
    if (!is_open(ws))
        return;
    if (ws->ping_armed) {
        event_del(&ws->ping_ev);
        ws->ping_armed = 0;
    }
    char storage[GUST_WS_MAX_HEADER + GUST_WS_MAX_CONTROL];
    gust_buf_t b;
    gust_buf_init(&b, storage, sizeof storage);
    gust_ws_encode_close(&ws->codec, &b, code, reason, len);
    gust_stream_write(ws->st, b.p, b.len);
    gust_buf_free(&b);
    arm(ws, &ws->close_ev, ws->close_timeout);
}

/* Fails the connection: our close frame with `code`, then no more input. */
static void fail(lws_t *ws, int code, const char *why) {
    ws->failed = 1;
    send_close(ws, code, why, strlen(why));
    if (ws->after_drain != AFTER_CLOSE)
        ws->after_drain = AFTER_LINGER;
    after_drain(ws);
}

/* Refuses to queue more for a peer that does not read (DESIGN 4.9).
 * Returns 1 when the connection is being failed for it. */
static int over_max_buffer(lws_t *ws) {
    if (gust_stream_pending(ws->st) <= ws->max_buffer)
        return 0;
    fail(ws, GUST_WS_CLOSE_POLICY, "write buffer full: client too slow");
    return 1;
}

/* Writes one data message; returns 0, or -1 when the connection cannot
 * take it. The caller holds a stream reference. */
static int send_message(lws_t *ws, int binary, const char *data, size_t len) {
    gust_stream_t *st = ws->st;
    if (!ws->client && !ws->codec.deflate.enabled) {
        /* The common server case: the header, then the payload as it is,
         * leave together in one write. */
        uint8_t hdr[GUST_WS_MAX_HEADER];
        size_t n = gust_ws_frame_header(hdr, 1, 0, binary ? GUST_WS_OP_BINARY : GUST_WS_OP_TEXT,
                                        len, NULL);
        struct iovec v[2] = {{hdr, n}, {(void *)data, len}};
        gust_stream_writev(st, v, 2);
        return 0;
    }
    char storage[4096];
    gust_buf_t b;
    gust_buf_init(&b, storage, sizeof storage);
    int rc = gust_ws_encode_message(&ws->codec, &b, binary, data, len);
    if (rc == 0)
        gust_stream_write(st, b.p, b.len);
    gust_buf_free(&b);
    return rc;
}

static void send_control(lws_t *ws, int opcode, const char *data, size_t len) {
    char storage[GUST_WS_MAX_HEADER + GUST_WS_MAX_CONTROL];
    gust_buf_t b;
    gust_buf_init(&b, storage, sizeof storage);
    gust_ws_encode_control(&ws->codec, &b, opcode, data, len);
    gust_stream_write(ws->st, b.p, b.len);
    gust_buf_free(&b);
}

/* ---- reading ------------------------------------------------------------- */

/* Hands a message to the waiting reader, or queues it. */
static void deliver(lws_t *ws, int kind, const char *data, size_t len) {
    gust_server_t *s = ws->server;
    if (!s->L)
        return;
    if (ws->read_ref != LUA_NOREF && !ws->head) {
        lua_State *co = ws->reader;
        lua_pushlstring(co, data, len);
        lua_pushstring(co, kind_names[kind]);
        wake_reader(ws, 2);
        ws->busy = 1;
        return;
    }
    ws_item_t *it = gust_malloc(sizeof *it + len);
    it->next = NULL;
    it->kind = kind;
    it->len = len;
    memcpy(it->data, data, len);
    if (ws->tail)
        ws->tail->next = it;
    else
        ws->head = it;
    ws->tail = it;
    ws->queued_bytes += len;
    ws->queued_items++;
    if (ws->queued_bytes >= QUEUE_MAX_BYTES || ws->queued_items >= QUEUE_MAX_ITEMS)
        ws->paused = 1;
}

/*
 * On a server, the messages that came before the peer's close frame or a
 * protocol error are handled first, in order, as a sequential reader would:
 * on_message may still answer them. So while Lua has a message in hand or
 * queued, the close answer (or our failing close) waits until it asks for
 * the next one. A client answers at once: nothing guarantees it reads.
 */
static int must_defer(const lws_t *ws) { return !ws->client && (ws->head || ws->busy); }

/* The peer's close frame: answer it, then end once the answer is out. */
static void answer_close(lws_t *ws) {
    /* Echo the code (RFC 6455 5.5.1); a codeless close gets an empty one. */
    send_close(ws, ws->peer_code == GUST_WS_CLOSE_NO_STATUS ? 0 : ws->peer_code, "", 0);
    ws->after_drain = AFTER_CLOSE;
    after_drain(ws);
}

static void run_deferred(lws_t *ws) {
    int d = ws->deferred;
    ws->deferred = DEFER_NONE;
    if (d == DEFER_NONE || !is_open(ws))
        return;
    gust_stream_t *st = ws->st;
    gust_stream_incref(st);
    if (d == DEFER_CLOSE)
        answer_close(ws);
    else
        fail(ws, ws->deferred_code, ws->deferred_err);
    gust_stream_free(st);
}

static void on_event(lws_t *ws, const gust_ws_event_t *ev) {
    switch (ev->type) {
    case GUST_WS_EV_MESSAGE:
        if (!ws->sent_close) /* after our close, data is dropped */
            deliver(ws, ev->binary ? K_BINARY : K_TEXT, ev->data, ev->len);
        break;
    case GUST_WS_EV_PING:
        if (ws->sent_close || !is_open(ws))
            break;
        if (over_max_buffer(ws))
            break;
        send_control(ws, GUST_WS_OP_PONG, ev->data, ev->len);
        if (ws->deliver_pings)
            deliver(ws, K_PING, ev->data, ev->len);
        break;
    case GUST_WS_EV_PONG:
        if (ws->pong_armed) {
            event_del(&ws->pong_ev);
            ws->pong_armed = 0;
        }
        if (ws->deliver_pongs && !ws->sent_close)
            deliver(ws, K_PONG, ev->data, ev->len);
        break;
    case GUST_WS_EV_CLOSE:
        ws->got_close = 1;
        ws->peer_code = ev->code;
        ws->peer_reason_len = ev->len;
        memcpy(ws->peer_reason, ev->data, ev->len);
        if (must_defer(ws))
            ws->deferred = DEFER_CLOSE;
        else
            answer_close(ws);
        break;
    case GUST_WS_EV_ERROR:
        if (must_defer(ws)) {
            ws->deferred = DEFER_FAIL;
            ws->deferred_code = ev->code;
            ws->deferred_err = ev->err;
        } else {
            fail(ws, ev->code, ev->err);
        }
        break;
    }
}

/* Parses what the stream has read, unless paused; ends the connection once
 * the stream is closed and nothing is left to parse. */
static void process(lws_t *ws) {
    if (ws->processing) {
        ws->reprocess = 1;
        return;
    }
    gust_stream_t *st = ws->st;
    if (!st)
        return;
    gust_stream_incref(st); /* a write below may close it, and finish() drop ours */
    ws->processing = 1;
    do {
        ws->reprocess = 0;
        struct evbuffer *in = st->in;
        while (evbuffer_get_length(in) > 0) {
            if (ws->failed || gust_ws_codec_done(&ws->codec)) {
                evbuffer_drain(in, evbuffer_get_length(in));
                break;
            }
            if (ws->paused)
                break;
            struct evbuffer_iovec v;
            if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
                break;
            gust_ws_event_t ev;
            size_t used = gust_ws_codec_feed(&ws->codec, v.iov_base, v.iov_len, &ev);
            evbuffer_drain(in, used); /* ev's data lives in the codec */
            if (ev.type != GUST_WS_EV_NONE)
                on_event(ws, &ev);
        }
    } while (ws->reprocess);
    ws->processing = 0;
    if (!st->closed) {
        /* Input that is only discarded never waits for Lua. */
        if (ws->paused && !ws->failed && !gust_ws_codec_done(&ws->codec))
            gust_stream_read_stop(st);
        else
            gust_stream_read_start(st);
    } else if (!ws->ended && (evbuffer_get_length(st->in) == 0 || !ws->paused)) {
        finish(ws);
    }
    gust_stream_free(st);
}

/* ---- stream and timer callbacks -------------------------------------------- */

static void on_read(gust_stream_t *st, void *arg) {
    lws_t *ws = arg;
    gust_sched_t *sc = ws->server->sched;
    gust_sched_batch_begin(sc);
    process(ws);
    gust_sched_batch_end(sc); /* last: the reader runs, and may let go of ws */
}

static void on_drain(gust_stream_t *st, void *arg) {
    lws_t *ws = arg;
    gust_server_t *s = ws->server;
    if (ws->write_ref != LUA_NOREF && s->L) {
        lua_pushboolean(waiter(s, ws->write_ref), 1);
        wake(s, &ws->write_ref, 1);
    }
    after_drain(ws);
}

static void on_close(gust_stream_t *st, void *arg) {
    lws_t *ws = arg;
    cancel_timers(ws);
    uncount(ws);
    if (!ws->server->L) {
        /* The server is going away with the Lua state: no Lua now. */
        ws->ended = 1;
        release_stream(ws);
        return;
    }
    process(ws);
    maybe_unanchor(ws);
}

static void on_ping_timer(evutil_socket_t fd, short what, void *arg) {
    lws_t *ws = arg;
    if (!is_open(ws) || ws->sent_close)
        return;
    gust_stream_t *st = ws->st;
    gust_stream_incref(st);
    if (!over_max_buffer(ws)) {
        send_control(ws, GUST_WS_OP_PING, "", 0);
        if (!ws->pong_armed)
            arm(ws, &ws->pong_ev, ws->ping_timeout);
    }
    gust_stream_free(st);
}

static void on_pong_timeout(evutil_socket_t fd, short what, void *arg) {
    lws_t *ws = arg;
    ws->pong_armed = 0;
    if (!is_open(ws))
        return;
    gust_stream_t *st = ws->st;
    gust_stream_incref(st);
    fail(ws, GUST_WS_CLOSE_INTERNAL, "ping timeout");
    gust_stream_free(st);
}

static void on_close_timeout(evutil_socket_t fd, short what, void *arg) {
    lws_t *ws = arg;
    ws->close_armed = 0;
    if (is_open(ws))
        gust_stream_close(ws->st, NULL); /* on_close ends it */
}

/* ---- methods ---------------------------------------------------------------- */

#define check_ws(L) ((lws_t *)gust_lua_checktag(L, &ws_tag, sizeof(lws_t), WS_MT))

/* Not a binding: the tail of the methods below once the connection is
 * closed. Pushes nil, "closed"  [-0, +2, m] */
static int closed_result(lua_State *L) {
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    return 2;
}

/* ws:write_message(data, binary?, nowait?) -> true | nil, "closed"
 * Yields while more than the high mark is unsent, unless nowait: true
 * never waits, "owner" waits only in the coroutine that made the
 * connection (a handler's own task; a broadcast from another task must
 * not stall on one slow client). Decided here because
 * coroutine.running() would split the caller's trace.  [-(2..4), +1|2, e] */
static int ws_write_message(lua_State *L) {
    lws_t *ws = check_ws(L);
    size_t len;
    const char *data = luaL_checklstring(L, 2, &len);
    int binary = lua_toboolean(L, 3);
    int nowait = lua_type(L, 4) == LUA_TSTRING ? L != ws->owner : lua_toboolean(L, 4);
    if (!is_open(ws) || ws->sent_close)
        return closed_result(L);
    gust_stream_t *st = ws->st;
    gust_stream_incref(st);
    int rc = over_max_buffer(ws) ? -1 : send_message(ws, binary, data, len);
    int open = !st->closed && !ws->failed;
    size_t pending = gust_stream_pending(st);
    gust_stream_free(st);
    if (rc < 0 || !open)
        return closed_result(L);
    if (!nowait && pending > ws->high_mark && ws->write_ref == LUA_NOREF) {
        int ref = gust_sched_anchor(L);
        if (ref != LUA_NOREF) {
            ws->write_ref = ref;
            anchor(L, ws, 1);
            return lua_yield(L, 0);
        }
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* ws:ping(data?) -> true | nil, "closed"  [-(1..2), +1|2, e] */
static int ws_ping(lua_State *L) {
    lws_t *ws = check_ws(L);
    size_t len = 0;
    const char *data = luaL_optlstring(L, 2, "", &len);
    luaL_argcheck(L, len <= GUST_WS_MAX_CONTROL, 2, "ping data over 125 bytes");
    if (!is_open(ws) || ws->sent_close)
        return closed_result(L);
    gust_stream_t *st = ws->st;
    gust_stream_incref(st);
    int full = over_max_buffer(ws);
    if (!full)
        send_control(ws, GUST_WS_OP_PING, data, len);
    int open = !st->closed && !full;
    gust_stream_free(st);
    if (!open)
        return closed_result(L);
    lua_pushboolean(L, 1);
    return 1;
}

/* ws:close(code?, reason?) -> true: starts the close handshake (code 1000
 * by default); the connection ends when the peer answers or after
 * close_timeout. A no-op once closing.  [-(1..3), +1, e] */
static int ws_close(lua_State *L) {
    lws_t *ws = check_ws(L);
    int code = luaL_optint(L, 2, GUST_WS_CLOSE_NORMAL);
    size_t len = 0;
    const char *reason = luaL_optlstring(L, 3, "", &len);
    luaL_argcheck(L, gust_ws_close_code_valid(code), 2,
                  "close code must be 1000-1003, 1007-1011 or 3000-4999");
    luaL_argcheck(L, len <= GUST_WS_MAX_CLOSE_REASON, 3, "close reason over 123 bytes");
    luaL_argcheck(L, gust_ws_utf8_valid(reason, len), 3, "close reason is not valid UTF-8");
    if (is_open(ws) && !ws->sent_close) {
        gust_stream_t *st = ws->st;
        gust_stream_incref(st);
        send_close(ws, code, reason, len);
        after_drain(ws);
        gust_stream_free(st);
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* ws:abort(): drops the connection now, without a close handshake.
 * [-1, +0, e] */
static int ws_abort(lua_State *L) {
    lws_t *ws = check_ws(L);
    if (is_open(ws))
        gust_stream_close(ws->st, NULL);
    return 0;
}

/* ws:receive() -> data, kind ("text", "binary", "pong", "ping") in arrival
 * order; nil, close_code, close_reason once the connection has ended.
 * Yields until something comes.  [-1, +2|3, e] */
static int ws_receive(lua_State *L) {
    lws_t *ws = check_ws(L);
    ws->busy = 0; /* whatever it had, it is done with */
    if (ws->head) {
        ws->busy = 1;
        ws_item_t *it = ws->head;
        ws->head = it->next;
        if (!ws->head)
            ws->tail = NULL;
        ws->queued_bytes -= it->len;
        ws->queued_items--;
        lua_pushlstring(L, it->data, it->len);
        lua_pushstring(L, kind_names[it->kind]);
        gust_free(it);
        if (ws->paused && ws->queued_bytes < QUEUE_MAX_BYTES / 2 &&
            ws->queued_items < QUEUE_MAX_ITEMS / 2) {
            ws->paused = 0;
            process(ws);
        }
        return 2;
    }
    run_deferred(ws); /* everything before it has been handled */
    if (ws->ended || !ws->st) {
        lua_pushnil(L);
        return 1 + push_close_info(L, ws);
    }
    if (ws->read_ref != LUA_NOREF)
        return luaL_error(L, "websocket: already reading");
    if (ws->reader != L) {
        int ref = gust_sched_anchor(L);
        if (ref == LUA_NOREF)
            return luaL_error(L, "websocket: receive must be called from a task");
        drop_reader(L, ws);
        ws->reader_ref = ref;
        ws->reader = L;
    }
    ws->read_ref = ws->reader_ref;
    anchor(L, ws, 1);
    return lua_yield(L, 0);
}

/* ws:closed() -> true once closing or closed  [-1, +1, e] */
static int ws_closed(lua_State *L) {
    lws_t *ws = check_ws(L);
    lua_pushboolean(L, !is_open(ws) || ws->sent_close);
    return 1;
}

/* ws:close_info() -> code, reason (nil while open)  [-1, +1|2, e] */
static int ws_close_info(lua_State *L) {
    lws_t *ws = check_ws(L);
    if (ws->ended || ws->got_close || ws->sent_close)
        return push_close_info(L, ws);
    lua_pushnil(L);
    return 1;
}

/* ws:pending() -> bytes written but not yet sent  [-1, +1, e] */
static int ws_pending(lua_State *L) {
    lws_t *ws = check_ws(L);
    lua_pushinteger(L, is_open(ws) ? (lua_Integer)gust_stream_pending(ws->st) : 0);
    return 1;
}

/* ws:compressed() -> true when permessage-deflate is on  [-1, +1, e] */
static int ws_compressed(lua_State *L) {
    lws_t *ws = check_ws(L);
    lua_pushboolean(L, ws->codec.deflate.enabled);
    return 1;
}

/* ws __gc -- releases the stream (closing it if still open) and the
 * queued messages  [-1, +0, e] */
static int ws_gc(lua_State *L) {
    lws_t *ws = check_ws(L);
    release_stream(ws); /* closes it if it is still open */
    drop_reader(L, ws);
    for (ws_item_t *it = ws->head, *next; it; it = next) {
        next = it->next;
        gust_free(it);
    }
    ws->head = ws->tail = NULL;
    gust_ws_codec_free(&ws->codec);
    return 0;
}

/* ws __tostring -> "gust.websocket (client|server, open|closing|closed)"
 * [-1, +1, e] */
static int ws_tostring(lua_State *L) {
    lws_t *ws = check_ws(L);
    lua_pushfstring(L, "gust.websocket (%s, %s)", ws->client ? "client" : "server",
                    is_open(ws) ? (ws->sent_close ? "closing" : "open") : "closed");
    return 1;
}

/* ---- making connections ------------------------------------------------------ */

static double opt_number(lua_State *L, int idx, const char *name, double dflt) {
    double v = gust_lua_opt_number(L, idx, name, dflt);
    if (v < 0)
        luaL_error(L, "websocket option %s: must be >= 0", name);
    return v;
}

/*
 * core.websocket(stream, opts?) -> ws | nil, err: takes the IOStream's
 * connection (which may hold bytes read past the handshake) for a WebSocket.
 * opts: client, max_message_size, max_buffer, high_mark, ping_interval,
 * ping_timeout, close_timeout, extensions (the agreed
 * Sec-WebSocket-Extensions value), compression_level, mem_level,
 * deliver_pings, deliver_pongs.  [-(1..2), +1|2, e]
 */
static int core_websocket(lua_State *L) {
    gust_server_t *s = lua_touserdata(L, lua_upvalueindex(1));
    luaL_checkudata(L, 1, "gust.stream");
    if (lua_isnoneornil(L, 2)) {
        lua_settop(L, 1);
        lua_newtable(L);
    }
    luaL_checktype(L, 2, LUA_TTABLE);
    /* Everything that can raise comes before the stream changes hands. */
    int client = gust_lua_opt_bool(L, 2, "client", 0);
    double max_message = opt_number(L, 2, "max_message_size", GUST_WS_DEFAULT_MAX_MESSAGE);
    double max_buffer = opt_number(L, 2, "max_buffer", DEFAULT_MAX_BUFFER);
    double high_mark = opt_number(L, 2, "high_mark", DEFAULT_HIGH_MARK);
    double ping_interval = opt_number(L, 2, "ping_interval", 0);
    double ping_timeout = opt_number(L, 2, "ping_timeout", ping_interval);
    double close_timeout = opt_number(L, 2, "close_timeout", DEFAULT_CLOSE_TIMEOUT);
    int level = (int)opt_number(L, 2, "compression_level", 100);
    int mem_level = (int)opt_number(L, 2, "mem_level", 0);
    lua_getfield(L, 2, "extensions");
    size_t extlen = 0;
    const char *ext = lua_isstring(L, -1) ? lua_tolstring(L, -1, &extlen) : NULL;
    gust_ws_deflate_params_t dp;
    memset(&dp, 0, sizeof dp);
    char err[GUST_ERR_LEN];
    if (ext && extlen && gust_ws_deflate_parse(ext, extlen, client, &dp, err, sizeof err) < 0) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    lws_t *ws = lua_newuserdata(L, sizeof *ws);
    memset(ws, 0, sizeof *ws);
    ws->tag = &ws_tag;
    ws->server = s;
    ws->owner = L;
    ws->self_ref = ws->read_ref = ws->write_ref = ws->reader_ref = LUA_NOREF;
    gust_ws_codec_init(&ws->codec, client, max_message < 1 ? 1 : (size_t)max_message);
    luaL_getmetatable(L, WS_MT);
    lua_setmetatable(L, -2);
    if (dp.enabled &&
        gust_ws_codec_set_deflate(&ws->codec, &dp, level == 100 ? -1 : level, mem_level) < 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "cannot set up permessage-deflate");
        return 2;
    }
    gust_stream_t *st = gust_lua_stream_take(L, 1);
    if (!st) {
        lua_pushnil(L);
        lua_pushliteral(L, "closed");
        return 2;
    }
    ws->st = st;
    ws->client = client;
    ws->max_buffer = (size_t)max_buffer;
    ws->high_mark = (size_t)high_mark;
    ws->ping_interval = ping_interval;
    ws->ping_timeout = ping_timeout;
    ws->close_timeout = close_timeout > 0 ? close_timeout : DEFAULT_CLOSE_TIMEOUT;
    ws->deliver_pings = gust_lua_opt_bool(L, 2, "deliver_pings", 0);
    ws->deliver_pongs = gust_lua_opt_bool(L, 2, "deliver_pongs", 0);
    st->on_read = on_read;
    st->on_drain = on_drain;
    st->on_close = on_close;
    st->arg = ws;
    /* The codec bounds messages; the stream's own input limit only has to
     * stay out of the way of one read beyond a paused queue. */
    st->max_buffer = (size_t)-1 / 2;
    event_assign(&ws->ping_ev, s->core->base, -1, EV_PERSIST, on_ping_timer, ws);
    evtimer_assign(&ws->pong_ev, s->core->base, on_pong_timeout, ws);
    evtimer_assign(&ws->close_ev, s->core->base, on_close_timeout, ws);
    if (!st->closed) {
        anchor(L, ws, -1);
        if (!client && s->core->metrics) {
            ws->counted = 1;
            GUST_METRICS_BUMP(gust_core_slot(s->core)->websockets_open, 1);
        }
        if (!st->tls.ssl) {
            /* A message leaves in one write: Nagle would only add delay. */
            int one = 1;
            setsockopt(st->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
        arm(ws, &ws->ping_ev, ping_interval);
    }
    process(ws); /* bytes that came with the handshake; starts reading */
    return 1;
}

static void deflate_opts(lua_State *L, int idx, gust_ws_deflate_opts_t *o) {
    memset(o, 0, sizeof *o);
    o->level = -1;
    if (lua_type(L, idx) != LUA_TTABLE)
        return;
    o->server_no_context_takeover = gust_lua_opt_bool(L, idx, "server_no_context_takeover", 0);
    o->client_no_context_takeover = gust_lua_opt_bool(L, idx, "client_no_context_takeover", 0);
    o->server_max_window_bits = (int)opt_number(L, idx, "server_max_window_bits", 0);
    o->client_max_window_bits = (int)opt_number(L, idx, "client_max_window_bits", 0);
}

/* core.ws_negotiate(offer, opts?) -> response | nil: the server's answer to
 * a client's Sec-WebSocket-Extensions, nil when no permessage-deflate offer
 * is acceptable. opts: server_/client_no_context_takeover,
 * server_/client_max_window_bits.  [-(1..2), +1, e] */
static int core_ws_negotiate(lua_State *L) {
    size_t len;
    const char *offer = luaL_checklstring(L, 1, &len);
    gust_ws_deflate_opts_t o;
    deflate_opts(L, 2, &o);
    char resp[256];
    if (gust_ws_deflate_negotiate(offer, len, &o, resp, sizeof resp) == 1)
        lua_pushstring(L, resp);
    else
        lua_pushnil(L);
    return 1;
}

/* core.ws_offer(opts?) -> a client's permessage-deflate offer  [-(0..1), +1, e] */
static int core_ws_offer(lua_State *L) {
    gust_ws_deflate_opts_t o;
    deflate_opts(L, 1, &o);
    char out[256];
    if (gust_ws_deflate_offer(&o, out, sizeof out) < 0)
        return luaL_error(L, "ws_offer: offer too long");
    lua_pushstring(L, out);
    return 1;
}

/* A connect in progress and the coroutine waiting for it. */
typedef struct ws_connect {
    gust_server_t *server;
    int co_ref;
    SSL_CTX *tls;
} ws_connect_t;

static void on_connected(gust_stream_t *st, const char *err, void *arg) {
    ws_connect_t *wc = arg;
    gust_server_t *s = wc->server;
    if (wc->tls)
        gust_tls_ctx_free(wc->tls); /* the connection's SSL keeps its own reference */
    if (!s->L) {
        gust_stream_free(st);
        gust_free(wc);
        return;
    }
    lua_State *co = waiter(s, wc->co_ref);
    int n = 1;
    if (st) {
        gust_lua_stream_push(co, s, st);
    } else {
        lua_pushnil(co);
        lua_pushstring(co, err);
        n = 2;
    }
    wake(s, &wc->co_ref, n);
    gust_free(wc);
}

/* core.ws_connect(host, port, opts?) -> IOStream | nil, err (yields):
 * opts: timeout, tls, validate_cert (default true), ca_certs.
 * [-(2..3), +1|2, e] */
static int core_ws_connect(lua_State *L) {
    gust_server_t *s = lua_touserdata(L, lua_upvalueindex(1));
    const char *host = luaL_checkstring(L, 1);
    int port = luaL_checkint(L, 2);
    luaL_argcheck(L, port > 0 && port < 65536, 2, "port out of range");
    double timeout = 20;
    int tls = 0, verify = 1;
    const char *ca = NULL;
    if (lua_type(L, 3) == LUA_TTABLE) {
        timeout = opt_number(L, 3, "timeout", 20);
        tls = gust_lua_opt_bool(L, 3, "tls", 0);
        lua_getfield(L, 3, "validate_cert");
        verify = lua_isnil(L, -1) || lua_toboolean(L, -1);
        lua_pop(L, 1);
        lua_getfield(L, 3, "ca_certs");
        ca = lua_tostring(L, -1); /* stays on the stack while we use it */
    }
    int ref = gust_sched_anchor(L);
    if (ref == LUA_NOREF)
        return luaL_error(L, "websocket connect must be called from a task");
    SSL_CTX *ctx = NULL;
    if (tls) {
        char err[GUST_ERR_LEN];
        ctx = gust_tls_client_ctx_new(verify, ca, err, sizeof err);
        if (!ctx) {
            luaL_unref(L, LUA_REGISTRYINDEX, ref);
            lua_pushnil(L);
            lua_pushstring(L, err);
            return 2;
        }
    }
    ws_connect_t *wc = gust_malloc(sizeof *wc);
    wc->server = s;
    wc->co_ref = ref;
    wc->tls = ctx;
    gust_connect_opts_t o = {timeout, ctx};
    gust_stream_connect_ex(s->core, host, port, &o, on_connected, wc);
    return lua_yield(L, 0);
}

int gust_ws_going_away(gust_server_t *s) {
    int open = 0;
    for (gust_stream_t *st = s->core->streams, *next; st; st = next) {
        next = st->next;
        if (st->on_close != on_close || st->closed)
            continue;
        lws_t *ws = st->arg;
        if (ws->client)
            continue;
        gust_stream_incref(st);
        if (!ws->sent_close) {
            static const char why[] = "server going away";
            send_close(ws, GUST_WS_CLOSE_GOING_AWAY, why, sizeof why - 1);
            after_drain(ws);
        }
        open += !st->closed;
        gust_stream_free(st);
    }
    return open;
}

int gust_ws_open_count(gust_server_t *s) {
    int open = 0;
    for (gust_stream_t *st = s->core->streams; st; st = st->next)
        if (st->on_close == on_close && !st->closed && !((lws_t *)st->arg)->client)
            open++;
    return open;
}

/* core.ws_going_away() -> n: gust_ws_going_away from Lua (a drain hook,
 * tests)  [-0, +1, -] */
static int core_ws_going_away(lua_State *L) {
    lua_pushinteger(L, gust_ws_going_away(lua_touserdata(L, lua_upvalueindex(1))));
    return 1;
}

void gust_ws_open(lua_State *L, gust_server_t *s) {
    static const luaL_Reg methods[] = {{"write_message", ws_write_message},
                                       {"ping", ws_ping},
                                       {"close", ws_close},
                                       {"abort", ws_abort},
                                       {"receive", ws_receive},
                                       {"closed", ws_closed},
                                       {"close_info", ws_close_info},
                                       {"pending", ws_pending},
                                       {"compressed", ws_compressed},
                                       {NULL, NULL}};
    static const luaL_Reg funcs[] = {
        {"websocket", core_websocket},         {"ws_negotiate", core_ws_negotiate},
        {"ws_offer", core_ws_offer},           {"ws_connect", core_ws_connect},
        {"ws_going_away", core_ws_going_away}, {NULL, NULL}};
    static const luaL_Reg meta[] = {{"__gc", ws_gc}, {"__tostring", ws_tostring}, {NULL, NULL}};
    gust_lua_newclass(L, WS_MT, methods, meta);
    lua_pop(L, 1);
    lua_pushlightuserdata(L, s);
    luaL_setfuncs(L, funcs, 1);
}
