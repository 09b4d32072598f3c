/* tls_tickets.c - RFC 5077 session ticket keys: the key file, its
 * rotation by master and its reader in smtpd.
 *
 * master calls tls_ticket_keys_rotate() at start and whenever *next_r
 * comes due; every smtpd context (tls_server.c) attaches a reader with
 * tls_tickets_attach(), so a session made by one smtpd process resumes
 * in any other. On failure rotate leaves the old file in place; the
 * reader keeps the keys it had, or falls back to a key of its own
 * process (with one warning) and resumption then only works with the
 * same process.
 *
 * The key file is text, mode 0600, written only by rotation:
 *
 *     postern-ticket-keys 1
 *     # name created aes-256-cbc-key hmac-sha256-key (hex), newest first
 *     <32 hex> <decimal unix time> <64 hex> <64 hex>
 *     ...
 *
 * Lines starting with '#' and empty lines are ignored; at most
 * TLS_TICKET_KEYS_MAX keys. Why text: an administrator can see with
 * `cat` when the keys were made, and a truncated write is detected
 * (every line must be whole); the secrets are as safe as in binary,
 * which is to say as safe as the file's mode.
 *
 * Tickets are encrypted with the newest key; a ticket made with any key
 * in the file is decrypted, and one made with an older key is renewed
 * (the callback returns 2) so the client gets a ticket with the newest.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include "base/fs.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/parse.h"
#include "tls/tls.h"
#include "tls/tls_int.h"

#define FILE_MAGIC "postern-ticket-keys 1"
#define FILE_MAX_SIZE 65536

/* ---- file format ---------------------------------------------------- */

/* Decode exactly 2 * len hex digits at *pp into out; *pp moves past
 * them. false when they are not there. */
static bool hex_decode(const char **pp, unsigned char *out, size_t len)
{
	const char *p = *pp;

	for (size_t i = 0; i < len; i++) {
		int hi = parse_hex_digit(p[2 * i]),
		    lo = hi < 0 ? -1 : parse_hex_digit(p[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return false;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	*pp = p + 2 * len;
	return true;
}

static void hex_append(str_t *out, const unsigned char *data, size_t len)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		str_append_c(out, digits[data[i] >> 4]);
		str_append_c(out, digits[data[i] & 15]);
	}
}

static bool skip_blank(const char **pp)
{
	const char *p = *pp;

	while (*p == ' ' || *p == '\t')
		p++;
	bool moved = p != *pp;
	*pp = p;
	return moved;
}

/* One key line (without its newline). */
static bool parse_key_line(const char *p, struct tls_ticket_key *key)
{
	char *end;

	if (!hex_decode(&p, key->name, sizeof(key->name)) || !skip_blank(&p))
		return false;
	if (*p < '0' || *p > '9')
		return false;
	errno = 0;
	long long created = strtoll(p, &end, 10);
	if (errno != 0 || end == p)
		return false;
	key->created = created;
	p = end;
	if (!skip_blank(&p) || !hex_decode(&p, key->aes, sizeof(key->aes)) || !skip_blank(&p) ||
	    !hex_decode(&p, key->hmac, sizeof(key->hmac)))
		return false;
	(void)skip_blank(&p);
	return *p == '\0' || *p == '\r';
}

int tls_ticket_keys_parse(const char *data, size_t len, const char *path,
                          struct tls_ticket_key *keys, size_t *n_r, str_t *error)
{
	const char *p = data, *end = data + len;
	bool magic = false;
	size_t n = 0;
	unsigned lineno = 0;
	str_t line;

	str_init(&line);
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));

		lineno++;
		if (nl == NULL) {
			str_appendf(error, "%s: line %u: incomplete (no newline)", path, lineno);
			goto fail;
		}
		str_reset(&line);
		str_append_n(&line, p, (size_t)(nl - p));
		p = nl + 1;
		if (memchr(line.buf, '\0', line.len) != NULL) {
			str_appendf(error, "%s: line %u: NUL byte", path, lineno);
			goto fail;
		}
		if (line.len == 0 || line.buf[0] == '#')
			continue;
		if (!magic) {
			if (strcmp(str_c(&line), FILE_MAGIC) != 0) {
				str_appendf(error,
				            "%s: not a postern ticket key file (expected \"%s\")",
				            path, FILE_MAGIC);
				goto fail;
			}
			magic = true;
			continue;
		}
		if (n == TLS_TICKET_KEYS_MAX) {
			str_appendf(error, "%s: more than %d keys", path, TLS_TICKET_KEYS_MAX);
			goto fail;
		}
		if (!parse_key_line(str_c(&line), &keys[n])) {
			/* Why the content is not quoted: the line holds keys. */
			str_appendf(error,
			            "%s: line %u: expected NAME(32 hex) CREATED AES-KEY(64 hex) "
			            "HMAC-KEY(64 hex)",
			            path, lineno);
			goto fail;
		}
		n++;
	}
	if (n == 0) {
		str_appendf(error, "%s: no keys", path);
		goto fail;
	}
	OPENSSL_cleanse(line.buf, line.cap);
	str_free(&line);
	*n_r = n;
	return 0;
fail:
	OPENSSL_cleanse(line.buf, line.cap);
	str_free(&line);
	OPENSSL_cleanse(keys, sizeof(*keys) * TLS_TICKET_KEYS_MAX);
	return -1;
}

void tls_ticket_keys_format(const struct tls_ticket_key *keys, size_t n, str_t *out)
{
	str_append(out, FILE_MAGIC
	           "\n"
	           "# name created aes-256-cbc-key hmac-sha256-key (hex), newest first\n");
	for (size_t i = 0; i < n; i++) {
		hex_append(out, keys[i].name, sizeof(keys[i].name));
		str_appendf(out, " %" PRId64 " ", keys[i].created);
		hex_append(out, keys[i].aes, sizeof(keys[i].aes));
		str_append_c(out, ' ');
		hex_append(out, keys[i].hmac, sizeof(keys[i].hmac));
		str_append_c(out, '\n');
	}
}

static int key_generate(struct tls_ticket_key *key, time_t now)
{
	key->created = (int64_t)now;
	if (RAND_bytes(key->name, sizeof(key->name)) <= 0 ||
	    RAND_bytes(key->aes, sizeof(key->aes)) <= 0 ||
	    RAND_bytes(key->hmac, sizeof(key->hmac)) <= 0)
		return -1;
	return 0;
}

/* ---- rotation (master) ------------------------------------------------ */

/* Read the keys of path; 0 with *n_r = 0 when it does not exist or is
 * not a valid key file (rotation then starts afresh). */
static void read_existing(const char *path, struct tls_ticket_key *keys, size_t *n_r)
{
	str_t data, error;

	*n_r = 0;
	str_init(&data);
	str_init(&error);
	if (fs_read_file(path, FILE_MAX_SIZE, &data, &error) == 0) {
		if (tls_ticket_keys_parse(data.buf, data.len, path, keys, n_r, &error) < 0) {
			log_warning("%s; writing a new key file", str_c(&error));
			*n_r = 0;
		}
	} else if (errno != ENOENT) {
		log_warning("%s; writing a new key file", str_c(&error));
	}
	OPENSSL_cleanse(data.buf, data.cap);
	str_free(&data);
	str_free(&error);
}

static int write_keys(const char *path, const struct tls_ticket_key *keys, size_t n, long uid,
                      long gid, str_t *error)
{
	char *tmp = xasprintf("%s.%ld.tmp", path, (long)getpid());
	struct fs_durable *f = NULL;
	str_t text;
	int ret = -1;

	str_init(&text);
	tls_ticket_keys_format(keys, n, &text);
	if (fs_durable_open(tmp, 0600, &f, error) < 0 && errno == EEXIST) {
		/* left behind by a master that died while writing */
		str_reset(error);
		(void)unlink(tmp);
		(void)fs_durable_open(tmp, 0600, &f, error);
	}
	if (f == NULL)
		goto out;
	if ((uid != -1 || gid != -1) && fchown(fs_durable_fd(f), (uid_t)uid, (gid_t)gid) < 0) {
		str_appendf(error, "%s: cannot change owner to %ld:%ld: %s", tmp, uid, gid,
		            strerror(errno));
		fs_durable_abort(&f);
		goto out;
	}
	if (fs_durable_write(f, text.buf, text.len, error) < 0) {
		fs_durable_abort(&f);
		goto out;
	}
	ret = fs_durable_commit(&f, path, FS_COMMIT_REPLACE, error);
out:
	OPENSSL_cleanse(text.buf, text.cap);
	str_free(&text);
	free(tmp);
	return ret;
}

int tls_ticket_keys_rotate(const char *path, unsigned lifetime, long uid, long gid, time_t *next_r,
                           str_t *error)
{
	struct tls_ticket_key keys[TLS_TICKET_KEYS_MAX];
	size_t n;
	time_t now = time(NULL);
	int ret = 0;

	read_existing(path, keys, &n);
	/* A key "created" in the future (clock set back) is replaced too:
	 * otherwise it would stay current for longer than lifetime. */
	if (n > 0 && keys[0].created <= (int64_t)now &&
	    (int64_t)now - keys[0].created < (int64_t)lifetime) {
		*next_r = (time_t)(keys[0].created + (int64_t)lifetime);
		goto out;
	}
	/* The new key first, then the one it replaces: tickets issued in
	 * the last lifetime still resume (and are renewed). Older keys go. */
	if (n > 0)
		keys[1] = keys[0];
	if (key_generate(&keys[0], now) < 0) {
		str_appendf(error, "%s: cannot make a new ticket key: no random bytes", path);
		ret = -1;
		goto out;
	}
	ret = write_keys(path, keys, n > 0 ? 2 : 1, uid, gid, error);
	if (ret == 0)
		*next_r = now + (time_t)lifetime;
out:
	OPENSSL_cleanse(keys, sizeof(keys));
	return ret;
}

/* ---- reader (smtpd) --------------------------------------------------- */

struct ticket_store {
	pthread_mutex_t lock;
	char *path; /* NULL: keys of this process only */
	struct tls_ticket_key keys[TLS_TICKET_KEYS_MAX];
	size_t n; /* 0: none read yet, use process_key */
	time_t checked; /* when the file was last looked at */
	bool have_stat;
	dev_t dev;
	ino_t ino;
	struct timespec mtime;
	off_t size;
	bool warned; /* the current failure was logged */
};

/* The fallback key of this process, made once. */
static struct tls_ticket_key process_key;
static pthread_once_t process_key_once = PTHREAD_ONCE_INIT;
static bool process_key_ok;
static bool process_key_warned;
static pthread_mutex_t process_key_lock = PTHREAD_MUTEX_INITIALIZER;

static void process_key_init(void)
{
	process_key_ok = key_generate(&process_key, time(NULL)) == 0;
}

static int store_index = -1;
static pthread_once_t store_index_once = PTHREAD_ONCE_INIT;

static void store_free(struct ticket_store *store)
{
	if (store == NULL)
		return;
	pthread_mutex_destroy(&store->lock);
	free(store->path);
	OPENSSL_cleanse(store, sizeof(*store));
	free(store);
}

static void store_ex_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                          void *argp)
{
	(void)parent;
	(void)ad;
	(void)idx;
	(void)argl;
	(void)argp;
	store_free(ptr);
}

static void store_index_init(void)
{
	store_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, store_ex_free);
}

/* Warn once per process that tickets only resume with this process. */
static void warn_process_key(const char *why)
{
	pthread_mutex_lock(&process_key_lock);
	bool first = !process_key_warned;
	process_key_warned = true;
	pthread_mutex_unlock(&process_key_lock);
	if (first)
		log_warning("TLS session tickets: %s; using a key of this process: sessions "
		            "resume only with this process",
		            why);
}

/* Re-read the key file when it changed; called with store->lock held.
 * At most once per second (per clock second), since every handshake
 * with a ticket comes here. */
static void store_refresh(struct ticket_store *store)
{
	time_t now = time(NULL);
	struct stat st;
	str_t data, error;

	if (store->path == NULL || (store->checked == now && store->checked != 0))
		return;
	store->checked = now;
	bool st_ok = stat(store->path, &st) == 0;
	if (st_ok && store->have_stat && st.st_dev == store->dev && st.st_ino == store->ino &&
	    st.st_size == store->size && st.st_mtim.tv_sec == store->mtime.tv_sec &&
	    st.st_mtim.tv_nsec == store->mtime.tv_nsec)
		return;

	struct tls_ticket_key keys[TLS_TICKET_KEYS_MAX];
	size_t n = 0;
	int ret;

	str_init(&data);
	str_init(&error);
	ret = fs_read_file(store->path, FILE_MAX_SIZE, &data, &error);
	if (ret == 0)
		ret = tls_ticket_keys_parse(data.buf, data.len, store->path, keys, &n, &error);
	if (ret == 0) {
		memcpy(store->keys, keys, sizeof(keys));
		store->n = n;
		store->warned = false;
		/* the stat of before the read: a change during it is seen next time */
		store->have_stat = st_ok;
		if (st_ok) {
			store->dev = st.st_dev;
			store->ino = st.st_ino;
			store->size = st.st_size;
			store->mtime = st.st_mtim;
		}
	} else {
		store->have_stat = false;
		if (store->n > 0) {
			/* Keep the keys read before: they still decrypt what
			 * this process issued, and master will fix the file. */
			if (!store->warned)
				log_warning("TLS session tickets: %s; keeping the keys read before",
				            str_c(&error));
			store->warned = true;
		} else {
			warn_process_key(str_c(&error));
		}
	}
	OPENSSL_cleanse(keys, sizeof(keys));
	OPENSSL_cleanse(data.buf, data.cap);
	str_free(&data);
	str_free(&error);
}

/* Copy the key to encrypt with into *key_r; -1 when there is none. */
static int store_newest(struct ticket_store *store, struct tls_ticket_key *key_r)
{
	int ret = 0;

	pthread_mutex_lock(&store->lock);
	store_refresh(store);
	if (store->n > 0)
		*key_r = store->keys[0];
	else if (process_key_ok)
		*key_r = process_key;
	else
		ret = -1;
	pthread_mutex_unlock(&store->lock);
	return ret;
}

/* Copy the key named name into *key_r, and say whether it is the one
 * new tickets are made with; -1 when no key has that name. */
static int store_find(struct ticket_store *store, const unsigned char *name,
                      struct tls_ticket_key *key_r, bool *newest_r)
{
	int ret = -1;

	pthread_mutex_lock(&store->lock);
	store_refresh(store);
	if (store->n > 0) {
		for (size_t i = 0; i < store->n; i++) {
			if (memcmp(store->keys[i].name, name, TLS_TICKET_NAME_LEN) == 0) {
				*key_r = store->keys[i];
				*newest_r = i == 0;
				ret = 0;
				break;
			}
		}
	}
	/* Why the process key also decrypts when the file is good again:
	 * tickets it issued while the file was missing still resume here. */
	if (ret < 0 && process_key_ok && memcmp(process_key.name, name, TLS_TICKET_NAME_LEN) == 0) {
		*key_r = process_key;
		*newest_r = store->n == 0;
		ret = 0;
	}
	pthread_mutex_unlock(&store->lock);
	return ret;
}

/* OpenSSL's ticket callback (SSL_CTX_set_tlsext_ticket_key_evp_cb):
 * enc 1: fill key_name and iv and set up both contexts, return 1;
 * enc 0: set them up for the ticket named key_name, return 1 (good),
 * 2 (good, issue a new ticket) or 0 (unknown key: full handshake). */
static int ticket_cb(SSL *ssl, unsigned char *key_name, unsigned char *iv, EVP_CIPHER_CTX *cctx,
                     EVP_MAC_CTX *hctx, int enc)
{
	struct ticket_store *store = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), store_index);
	struct tls_ticket_key key;
	bool newest = true;
	OSSL_PARAM params[] = {
	        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
	        OSSL_PARAM_construct_end(),
	};
	int ret;

	if (store == NULL)
		return -1;
	if (enc) {
		if (store_newest(store, &key) < 0)
			return -1;
		if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(EVP_aes_256_cbc())) <= 0) {
			ret = -1;
			goto out;
		}
		memcpy(key_name, key.name, TLS_TICKET_NAME_LEN);
		ret = EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, key.aes, iv) == 1 &&
		                      EVP_MAC_init(hctx, key.hmac, sizeof(key.hmac), params) == 1
		              ? 1
		              : -1;
		goto out;
	}
	if (store_find(store, key_name, &key, &newest) < 0)
		return 0;
	if (EVP_MAC_init(hctx, key.hmac, sizeof(key.hmac), params) != 1 ||
	    EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, key.aes, iv) != 1)
		ret = -1;
	else
		ret = newest ? 1 : 2;
out:
	OPENSSL_cleanse(&key, sizeof(key));
	return ret;
}

int tls_tickets_attach(SSL_CTX *ctx, const char *path, str_t *error)
{
	struct ticket_store *store;

	pthread_once(&store_index_once, store_index_init);
	pthread_once(&process_key_once, process_key_init);
	if (store_index < 0) {
		str_append(error, "cannot allocate OpenSSL ex_data for session tickets");
		return -1;
	}
	store = xcalloc(1, sizeof(*store));
	pthread_mutex_init(&store->lock, NULL);
	if (path != NULL && *path != '\0')
		store->path = xstrdup(path);
	if (SSL_CTX_set_ex_data(ctx, store_index, store) != 1) {
		store_free(store);
		str_append(error, "cannot attach the session ticket keys to the TLS context");
		return -1;
	}
	SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb);
	/* Read the file now, so a missing one is reported at start. */
	/* No file named: the caller wants this process's keys (smtpd run by
	 * hand, where no master shares keys; postern check), no warning. */
	pthread_mutex_lock(&store->lock);
	if (store->path != NULL)
		store_refresh(store);
	pthread_mutex_unlock(&store->lock);
	return 0;
}
