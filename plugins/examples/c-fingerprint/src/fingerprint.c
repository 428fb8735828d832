// c-fingerprint: an Orca SSH resolver in C. An allowlist of OpenSSH key fingerprints per user.
//
// Settings (see README.md):
//   user:<name>   = "SHA256:...,SHA256:..."   the keys <name> may log in with (one or more)
//   groups:<name> = "ops,dev"                 optional groups for <name>
//
// Answers to ssh.resolve:
//   public key listed for the user     -> allow(id = user, groups, cache 60 s)
//   public key not listed for the user -> deny("key <fingerprint> is not listed for <user>")
//   user not configured, or password   -> pass
//
// Memory: the generated bindings hand every argument to us (we free it with the generated
// *_free functions before returning) and free what we return in their post-return function
// with free(), so everything returned is malloc'd here, and empty lists carry no allocation
// (the post-return code frees only lists and strings whose length is not zero). The parsed
// settings live in one global per instance: they are this instance's configuration, rebuilt by
// every init; nothing else outlives a call.

#include "ssh_resolver.h"

#include <stdlib.h>
#include <string.h>

#define FINGERPRINT_PREFIX "SHA256:"
#define CACHE_SECONDS 60
#define MAX_ID_BYTES 256
// Longest piece of a user-supplied value quoted back in a message or a log line.
#define QUOTE_MAX 120

// ---- small helpers -------------------------------------------------------------------------

// A byte string this file owns (not NUL-terminated; it may be empty with ptr == NULL).
typedef struct {
    uint8_t *ptr;
    size_t len;
} bytes_t;

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) abort(); // The gateway turns the trap into a deny for this call.
    return p;
}

static void *xrealloc(void *old, size_t n) {
    void *p = realloc(old, n ? n : 1);
    if (!p) abort();
    return p;
}

static bytes_t bytes_copy(const uint8_t *p, size_t len) {
    bytes_t b = {NULL, len};
    if (len) {
        b.ptr = xmalloc(len);
        memcpy(b.ptr, p, len);
    }
    return b;
}

static bool bytes_eq(bytes_t a, const uint8_t *p, size_t len) {
    return a.len == len && (len == 0 || memcmp(a.ptr, p, len) == 0);
}

// A growing text buffer for messages.
typedef struct {
    char *ptr;
    size_t len, cap;
} text_t;

static void text_raw(text_t *t, const char *p, size_t n) {
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 64;
        while (t->len + n + 1 > cap) cap *= 2;
        t->ptr = xrealloc(t->ptr, cap);
        t->cap = cap;
    }
    memcpy(t->ptr + t->len, p, n);
    t->len += n;
    t->ptr[t->len] = '\0';
}

static void text_add(text_t *t, const char *s) { text_raw(t, s, strlen(s)); }

// A decimal number. (No printf: it would pull libc's stdio, and with it WASI file imports, into
// a module that otherwise needs no WASI at all.)
static void text_num(text_t *t, size_t n) {
    char buf[24];
    size_t i = sizeof buf;
    do {
        buf[--i] = (char)('0' + n % 10);
        n /= 10;
    } while (n);
    text_raw(t, buf + i, sizeof buf - i);
}

// Quote a value someone else chose: control bytes become \xNN and the text is cut at QUOTE_MAX
// bytes, so a message stays one readable line. The cut falls between characters: a string that
// crosses into the host must be valid UTF-8, or the call traps.
static void text_quote(text_t *t, const uint8_t *p, size_t len) {
    size_t n = len > QUOTE_MAX ? QUOTE_MAX : len;
    while (n > 0 && n < len && (p[n] & 0xC0) == 0x80) n--;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < 0x20 || p[i] == 0x7f) {
            static const char hex[] = "0123456789abcdef";
            char esc[4] = {'\\', 'x', hex[p[i] >> 4], hex[p[i] & 15]};
            text_raw(t, esc, sizeof esc);
        } else {
            text_raw(t, (const char *)&p[i], 1);
        }
    }
    if (n < len) text_add(t, "...");
}

// Hand a text over as a component string (ownership moves; an empty text is no allocation).
static ssh_resolver_string_t text_take(text_t *t) {
    ssh_resolver_string_t s = {(uint8_t *)t->ptr, t->len};
    if (t->len == 0) {
        free(t->ptr);
        s.ptr = NULL;
    }
    t->ptr = NULL;
    t->len = t->cap = 0;
    return s;
}

static void text_free(text_t *t) {
    free(t->ptr);
    t->ptr = NULL;
    t->len = t->cap = 0;
}

static void log_debug(text_t *t) {
    ssh_resolver_string_t msg = {(uint8_t *)t->ptr, t->len};
    orca_identity_log_log(ORCA_IDENTITY_LOG_LEVEL_DEBUG, &msg);
    text_free(t);
}

static bool has_prefix(const uint8_t *p, size_t len, const char *prefix) {
    size_t n = strlen(prefix);
    return len >= n && memcmp(p, prefix, n) == 0;
}

static bool is_blank(uint8_t c) { return c == ' ' || c == '\t'; }

// ---- the configuration ---------------------------------------------------------------------

typedef struct {
    bytes_t *items;
    size_t len;
} bytes_list_t;

typedef struct {
    bytes_t name;
    bytes_list_t fingerprints;
    bytes_list_t groups;
    bool has_groups;
} user_t;

typedef struct {
    user_t *users;
    size_t len;
} config_t;

static config_t config;

static void bytes_list_push(bytes_list_t *l, bytes_t b) {
    l->items = xrealloc(l->items, (l->len + 1) * sizeof *l->items);
    l->items[l->len++] = b;
}

static void bytes_list_free(bytes_list_t *l) {
    for (size_t i = 0; i < l->len; i++) free(l->items[i].ptr);
    free(l->items);
    l->items = NULL;
    l->len = 0;
}

static void config_free(config_t *c) {
    for (size_t i = 0; i < c->len; i++) {
        free(c->users[i].name.ptr);
        bytes_list_free(&c->users[i].fingerprints);
        bytes_list_free(&c->users[i].groups);
    }
    free(c->users);
    c->users = NULL;
    c->len = 0;
}

static user_t *config_find(config_t *c, const uint8_t *name, size_t len) {
    for (size_t i = 0; i < c->len; i++) {
        if (bytes_eq(c->users[i].name, name, len)) return &c->users[i];
    }
    return NULL;
}

// Split a comma-separated value into items with the blanks around each trimmed; empty items
// (",," or a trailing comma) are skipped. Calls `item` for each; stops at its first error.
typedef bool (*item_fn)(const uint8_t *p, size_t len, void *ctx);

static bool split_list(const ssh_resolver_string_t *value, item_fn item, void *ctx) {
    const uint8_t *p = value->ptr, *end = value->ptr + value->len;
    while (p < end) {
        const uint8_t *comma = memchr(p, ',', (size_t)(end - p));
        const uint8_t *stop = comma ? comma : end;
        const uint8_t *a = p, *b = stop;
        while (a < b && is_blank(*a)) a++;
        while (b > a && is_blank(b[-1])) b--;
        if (b > a && !item(a, (size_t)(b - a), ctx)) return false;
        p = comma ? comma + 1 : end;
    }
    return true;
}

// The key of the setting being read, for error messages.
typedef struct {
    const ssh_resolver_string_t *key;
    user_t *user;
    text_t *err;
} item_ctx_t;

static void err_key(text_t *err, const ssh_resolver_string_t *key) {
    text_add(err, "setting `");
    text_quote(err, key->ptr, key->len);
    text_add(err, "`: ");
}

static bool is_base64(uint8_t c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

static bool add_fingerprint(const uint8_t *p, size_t len, void *vctx) {
    item_ctx_t *ctx = vctx;
    size_t n = strlen(FINGERPRINT_PREFIX);
    size_t end = len;
    while (end > n && p[end - 1] == '=') end--; // OpenSSH prints no padding; accept it anyway
    bool ok = has_prefix(p, len, FINGERPRINT_PREFIX) && end > n;
    for (size_t i = n; ok && i < end; i++) ok = is_base64(p[i]);
    if (!ok) {
        err_key(ctx->err, ctx->key);
        text_add(ctx->err, "`");
        text_quote(ctx->err, p, len);
        text_add(ctx->err,
                 "` is not an OpenSSH fingerprint; expected `SHA256:` followed by base64, as "
                 "`ssh-keygen -lf KEY.pub` prints it, several separated by commas");
        return false;
    }
    bytes_list_push(&ctx->user->fingerprints, bytes_copy(p, end));
    return true;
}

static bool add_group(const uint8_t *p, size_t len, void *vctx) {
    item_ctx_t *ctx = vctx;
    for (size_t i = 0; i < len; i++) {
        if (p[i] < 0x20 || p[i] == 0x7f) {
            err_key(ctx->err, ctx->key);
            text_add(ctx->err, "a group name contains a control character");
            return false;
        }
    }
    bytes_list_push(&ctx->user->groups, bytes_copy(p, len));
    return true;
}

// Check a user name taken from a `user:` or `groups:` key; it becomes the identity's id.
static bool check_name(const ssh_resolver_string_t *key, const uint8_t *name, size_t len,
                       text_t *err) {
    const char *why = NULL;
    if (len == 0) why = "the user name after the colon is empty";
    else if (len > MAX_ID_BYTES) why = "the user name is longer than 256 bytes";
    for (size_t i = 0; !why && i < len; i++) {
        if (name[i] < 0x20 || name[i] == 0x7f) why = "the user name contains a control character";
    }
    if (why) {
        err_key(err, key);
        text_add(err, why);
        return false;
    }
    return true;
}

// Read the settings into `c`; false with a message naming the setting in `err`.
static bool parse_settings(const orca_identity_types_settings_t *s, config_t *c, text_t *err) {
    static const char user_prefix[] = "user:", groups_prefix[] = "groups:";
    const size_t up = sizeof user_prefix - 1, gp = sizeof groups_prefix - 1;

    // Users first: keys come in key order, so `groups:` keys come before `user:` keys.
    for (size_t i = 0; i < s->len; i++) {
        const ssh_resolver_string_t *key = &s->ptr[i].f0, *value = &s->ptr[i].f1;
        if (has_prefix(key->ptr, key->len, user_prefix)) {
            const uint8_t *name = key->ptr + up;
            size_t name_len = key->len - up;
            if (!check_name(key, name, name_len, err)) return false;
            if (config_find(c, name, name_len)) {
                err_key(err, key);
                text_add(err, "given twice");
                return false;
            }
            c->users = xrealloc(c->users, (c->len + 1) * sizeof *c->users);
            user_t *u = &c->users[c->len++];
            memset(u, 0, sizeof *u);
            u->name = bytes_copy(name, name_len);
            item_ctx_t ctx = {key, u, err};
            if (!split_list(value, add_fingerprint, &ctx)) return false;
            if (u->fingerprints.len == 0) {
                err_key(err, key);
                text_add(err, "lists no fingerprint; expected one or more `SHA256:...` "
                              "fingerprints separated by commas");
                return false;
            }
        } else if (!has_prefix(key->ptr, key->len, groups_prefix)) {
            err_key(err, key);
            text_add(err, "unknown setting; accepted keys are `user:<name>` (comma-separated "
                          "`SHA256:...` key fingerprints) and `groups:<name>` (comma-separated "
                          "groups)");
            return false;
        }
    }
    if (c->len == 0) {
        text_add(err, "no `user:<name>` setting: add one per user, with the user's key "
                      "fingerprints (`SHA256:...`, comma-separated) as the value");
        return false;
    }
    for (size_t i = 0; i < s->len; i++) {
        const ssh_resolver_string_t *key = &s->ptr[i].f0, *value = &s->ptr[i].f1;
        if (!has_prefix(key->ptr, key->len, groups_prefix)) continue;
        const uint8_t *name = key->ptr + gp;
        size_t name_len = key->len - gp;
        if (!check_name(key, name, name_len, err)) return false;
        user_t *u = config_find(c, name, name_len);
        if (!u) {
            err_key(err, key);
            text_add(err, "there is no `user:");
            text_quote(err, name, name_len);
            text_add(err, "` setting for these groups");
            return false;
        }
        if (u->has_groups) {
            err_key(err, key);
            text_add(err, "given twice");
            return false;
        }
        u->has_groups = true;
        item_ctx_t ctx = {key, u, err};
        if (!split_list(value, add_group, &ctx)) return false;
    }
    return true;
}

// ---- exports -------------------------------------------------------------------------------

bool exports_orca_identity_lifecycle_init(exports_orca_identity_lifecycle_settings_t *settings,
                                          ssh_resolver_string_t *err) {
    config_free(&config); // init runs once per instance; be tidy should it run again
    text_t msg = {0};
    text_t line = {0};
    bool ok = parse_settings(settings, &config, &msg);
    if (ok) {
        size_t keys = 0;
        for (size_t i = 0; i < config.len; i++) keys += config.users[i].fingerprints.len;
        text_add(&line, "c-fingerprint: init: ");
        text_num(&line, config.len);
        text_add(&line, " users, ");
        text_num(&line, keys);
        text_add(&line, " key fingerprints");
    } else {
        config_free(&config);
        text_add(&line, "c-fingerprint: init failed: ");
        text_raw(&line, msg.ptr, msg.len);
        *err = text_take(&msg);
    }
    text_free(&msg);
    log_debug(&line);
    exports_orca_identity_lifecycle_settings_free(settings);
    return ok;
}

// A copy of `l` as a component list of strings; empty lists own no memory.
static ssh_resolver_list_string_t strings_copy(const bytes_list_t *l) {
    ssh_resolver_list_string_t out = {NULL, 0};
    if (l->len == 0) return out;
    out.ptr = xmalloc(l->len * sizeof *out.ptr);
    out.len = l->len;
    for (size_t i = 0; i < l->len; i++) {
        bytes_t b = bytes_copy(l->items[i].ptr, l->items[i].len);
        out.ptr[i].ptr = b.ptr;
        out.ptr[i].len = b.len;
    }
    return out;
}

void exports_orca_identity_ssh_resolve(exports_orca_identity_ssh_ssh_attempt_t *attempt,
                                       exports_orca_identity_ssh_verdict_t *ret) {
    // Zeroed first: every option (display-name, images, set-cookie, ...) starts as none.
    memset(ret, 0, sizeof *ret);
    ret->tag = ORCA_IDENTITY_TYPES_VERDICT_PASS;

    text_t line = {0};
    text_add(&line, "c-fingerprint: ssh user `");
    text_quote(&line, attempt->user.ptr, attempt->user.len);
    text_add(&line, "` ");

    const orca_identity_types_credential_t *cred = &attempt->credential;
    user_t *u = config_find(&config, attempt->user.ptr, attempt->user.len);
    if (cred->tag != ORCA_IDENTITY_TYPES_CREDENTIAL_PUBLIC_KEY) {
        text_add(&line, "password: pass (this resolver checks keys only)");
    } else {
        const ssh_resolver_string_t *fp = &cred->val.public_key.fingerprint;
        text_add(&line, "key ");
        text_quote(&line, fp->ptr, fp->len);
        if (!u) {
            text_add(&line, ": pass (user not configured)");
        } else {
            bool listed = false;
            for (size_t i = 0; !listed && i < u->fingerprints.len; i++) {
                listed = bytes_eq(u->fingerprints.items[i], fp->ptr, fp->len);
            }
            if (listed) {
                ret->tag = ORCA_IDENTITY_TYPES_VERDICT_ALLOW;
                orca_identity_types_grant_t *g = &ret->val.allow;
                bytes_t id = bytes_copy(u->name.ptr, u->name.len);
                g->who.id.ptr = id.ptr;
                g->who.id.len = id.len;
                g->who.groups = strings_copy(&u->groups);
                g->cache_seconds = CACHE_SECONDS;
                text_add(&line, ": allow (");
                text_num(&line, u->groups.len);
                text_add(&line, " groups)");
            } else {
                ret->tag = ORCA_IDENTITY_TYPES_VERDICT_DENY;
                text_t reason = {0};
                text_add(&reason, "key ");
                text_raw(&reason, (const char *)fp->ptr, fp->len);
                text_add(&reason, " is not listed for ");
                text_raw(&reason, (const char *)u->name.ptr, u->name.len);
                ret->val.deny.reason = text_take(&reason);
                text_add(&line, ": deny (not listed)");
            }
        }
    }
    log_debug(&line);
    exports_orca_identity_ssh_ssh_attempt_free(attempt);
}
