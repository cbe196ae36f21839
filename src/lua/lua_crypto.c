/*
 * lua_crypto.c -- the hashing, encoding and compression helpers the Lua
 * framework needs (signed cookies, XSRF tokens, ETags, gzip), from OpenSSL
 * and zlib.
 */
#include <string.h>

#include <event2/event.h>
#include <lauxlib.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <zlib.h>

#include "lua_crypto.h"

/* core.hmac_sha256(key, msg) -> 32 raw bytes  [-2, +1, e] */
static int c_hmac_sha256(lua_State *L) {
    size_t klen, mlen;
    const char *key = luaL_checklstring(L, 1, &klen);
    const char *msg = luaL_checklstring(L, 2, &mlen);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, mlen, md, &mdlen))
        return luaL_error(L, "hmac_sha256 failed");
    lua_pushlstring(L, (const char *)md, mdlen);
    return 1;
}

static int digest(lua_State *L, const EVP_MD *md) {
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int outlen = 0;
    if (!EVP_Digest(s, len, out, &outlen, md, NULL))
        return luaL_error(L, "digest failed");
    lua_pushlstring(L, (const char *)out, outlen);
    return 1;
}

/* core.sha1(s) -> 20 raw bytes  [-1, +1, e] */
static int c_sha1(lua_State *L) { return digest(L, EVP_sha1()); }
/* core.sha256(s) -> 32 raw bytes  [-1, +1, e] */
static int c_sha256(lua_State *L) { return digest(L, EVP_sha256()); }

/* core.hex(s) -> lower-case hex  [-1, +1, e] */
static int c_hex(lua_State *L) {
    static const char hex[] = "0123456789abcdef";
    size_t len;
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &len);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (size_t i = 0; i < len; i++) {
        luaL_addchar(&b, hex[s[i] >> 4]);
        luaL_addchar(&b, hex[s[i] & 15]);
    }
    luaL_pushresult(&b);
    return 1;
}

/* core.b64encode(s) -> standard base64 with padding  [-1, +1, e] */
static int c_b64encode(lua_State *L) {
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    size_t outlen = 4 * ((len + 2) / 3);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    char *out = outlen < LUAL_BUFFERSIZE ? luaL_prepbuffer(&b) : lua_newuserdata(L, outlen + 1);
    int n = EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)s, (int)len);
    if (outlen < LUAL_BUFFERSIZE) {
        luaL_addsize(&b, n);
        luaL_pushresult(&b);
    } else {
        lua_pushlstring(L, out, n);
    }
    return 1;
}

/* core.b64decode(s) -> bytes | nil on malformed input  [-1, +1, e] */
static int c_b64decode(lua_State *L) {
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    if (len % 4 != 0) {
        lua_pushnil(L);
        return 1;
    }
    unsigned char *out = lua_newuserdata(L, len / 4 * 3 + 1);
    int n = len ? EVP_DecodeBlock(out, (const unsigned char *)s, (int)len) : 0;
    if (n < 0) {
        lua_pushnil(L);
        return 1;
    }
    /* EVP_DecodeBlock counts padding as zero bytes; take them off. */
    if (len && s[len - 1] == '=')
        n--;
    if (len > 1 && s[len - 2] == '=')
        n--;
    lua_pushlstring(L, (const char *)out, n);
    return 1;
}

/* core.random_bytes(n) -> n bytes from the CSPRNG  [-1, +1, e] */
static int c_random_bytes(lua_State *L) {
    int n = luaL_checkint(L, 1);
    luaL_argcheck(L, n >= 0 && n <= 65536, 1, "0..65536 bytes");
    unsigned char *buf = lua_newuserdata(L, n ? n : 1);
    if (RAND_bytes(buf, n) != 1)
        return luaL_error(L, "random_bytes: the CSPRNG failed");
    lua_pushlstring(L, (const char *)buf, n);
    return 1;
}

/* core.gzip(s, level?) -> gzip member  [-(1..2), +1, e] */
static int c_gzip(lua_State *L) {
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    int level = luaL_optint(L, 2, 6);
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return luaL_error(L, "gzip: deflateInit2 failed");
    uLong bound = deflateBound(&z, len);
    unsigned char *out = lua_newuserdata(L, bound);
    z.next_in = (Bytef *)s;
    z.avail_in = (uInt)len;
    z.next_out = out;
    z.avail_out = (uInt)bound;
    int rc = deflate(&z, Z_FINISH);
    size_t n = z.total_out;
    deflateEnd(&z);
    if (rc != Z_STREAM_END)
        return luaL_error(L, "gzip: deflate failed");
    lua_pushlstring(L, (const char *)out, n);
    return 1;
}

void gust_crypto_open(lua_State *L) {
    static const luaL_Reg funcs[] = {{"hmac_sha256", c_hmac_sha256},
                                     {"sha1", c_sha1},
                                     {"sha256", c_sha256},
                                     {"hex", c_hex},
                                     {"b64encode", c_b64encode},
                                     {"b64decode", c_b64decode},
                                     {"random_bytes", c_random_bytes},
                                     {"gzip", c_gzip},
                                     {NULL, NULL}};
    luaL_setfuncs(L, funcs, 0);
}
