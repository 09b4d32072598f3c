/* tls_client.c - OpenSSL client contexts built from Postfix's smtp_tls_*
 * parameters, and the SSL of each outbound connection.
 *
 * Used by the smtp client (STARTTLS to a remote server) through tls.h;
 * the caller fills struct tls_client_settings from main.cf.
 * tls_client_new() either returns a complete context or fails with one
 * message that names the file or parameter at fault.
 *
 * The pieces shared with the server (protocols, the cipher list of a
 * grade, certificate and CA loading through fs_read_file()) live in
 * tls_server.c behind tls_int.h; this file adds what only a client
 * does:
 *   - the server certificate is verified against ca_file/ca_path, and
 *     with a verify_name against that name (SSL_set1_host, no partial
 *     wildcards, as Postfix's tls_check_name()), but a failure never
 *     fails the handshake: the verify callback records and accepts, and
 *     the caller applies its security level (Postfix does the same);
 *   - SNI when asked for;
 *   - session resumption: the sessions (TLS 1.3 tickets, TLS 1.2 IDs or
 *     tickets) servers give are kept in memory under the key the caller
 *     names (tls_client_ssl_resume()), at most TLS_CLIENT_SESSIONS of
 *     them, and offered on the next connection with the same key, as
 *     Postfix's smtp_tls_session_cache does (in memory: one smtp process
 *     serves many connections, so no database is needed).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "base/hash.h"
#include "base/log.h"
#include "base/mem.h"
#include "tls/tls.h"
#include "tls/tls_int.h"

#define TLS_CLIENT_SESSIONS 1000

struct tls_client {
	SSL_CTX *ctx;
	int loglevel;
	char *cipher_list; /* for loglevel 2 */
	hash_t *sessions; /* cache key -> SSL_SESSION */
};

/* Per-connection verification state, in the SSL's ex_data. */
struct client_conn {
	int loglevel;
	bool chain_failed;
	long chain_error; /* the first error other than the name's */
	struct tls_client *cli; /* for the session cache */
	char *cache_key; /* tls_client_ssl_resume(); NULL: no caching */
};

static int conn_index = -1;
static pthread_once_t conn_once = PTHREAD_ONCE_INIT;

static void conn_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	(void)parent;
	(void)ad;
	(void)idx;
	(void)argl;
	(void)argp;
	if (ptr != NULL)
		free(((struct client_conn *)ptr)->cache_key);
	free(ptr);
}

static void session_free(void *p)
{
	SSL_SESSION_free(p);
}

/* OpenSSL has a new session for this connection (after the handshake,
 * or a TLS 1.3 ticket later): keep it under the connection's key.
 * Returning 1 keeps OpenSSL's reference. */
static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
	struct client_conn *conn = SSL_get_ex_data(ssl, conn_index);

	if (conn == NULL || conn->cache_key == NULL || conn->cli == NULL ||
	    !SSL_SESSION_is_resumable(sess))
		return 0;
	/* Bounded: when full, start again (the cache is an optimisation). */
	if (hash_count(conn->cli->sessions) >= TLS_CLIENT_SESSIONS &&
	    !hash_contains(conn->cli->sessions, conn->cache_key)) {
		hash_destroy(&conn->cli->sessions);
		conn->cli->sessions = hash_new(session_free);
	}
	hash_put(conn->cli->sessions, conn->cache_key, sess);
	return 1;
}

void tls_client_ssl_resume(struct tls_client *cli, SSL *ssl, const char *key)
{
	struct client_conn *conn = SSL_get_ex_data(ssl, conn_index);
	SSL_SESSION *sess;

	if (conn == NULL)
		return;
	free(conn->cache_key);
	conn->cache_key = xstrdup(key);
	conn->cli = cli;
	sess = hash_get(cli->sessions, key);
	if (sess == NULL)
		return;
	if ((uint64_t)SSL_SESSION_get_time(sess) + (uint64_t)SSL_SESSION_get_timeout(sess) <=
	            (uint64_t)time(NULL) ||
	    SSL_set_session(ssl, sess) != 1) {
		hash_delete(cli->sessions, key);
		return;
	}
	/* A session is offered once: a failed resumption must not be
	 * retried with it, and a new one replaces it anyway. */
	hash_delete(cli->sessions, key);
}

static void conn_index_init(void)
{
	conn_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, conn_free);
}

bool tls_client_chain_failed(const SSL *ssl, long *error_r)
{
	const struct client_conn *conn = conn_index < 0 ? NULL : SSL_get_ex_data(ssl, conn_index);

	*error_r = conn != NULL && conn->chain_failed ? conn->chain_error : X509_V_OK;
	return conn != NULL && conn->chain_failed;
}

/* Accept every server certificate, noting whether its chain failed.
 * Why the name mismatch is kept apart: "Trusted" (chain good, name
 * not) and "Verified" differ only by it, and tls_info_get() checks the
 * name itself. Logs each certificate at loglevel >= 2 as Postfix:
 * "PEER: depth=0 verify=1 subject=/CN=mx.example.com". */
static int verify_cb(int ok, X509_STORE_CTX *store_ctx)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(store_ctx, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct client_conn *conn = ssl != NULL ? SSL_get_ex_data(ssl, conn_index) : NULL;
	int err = X509_STORE_CTX_get_error(store_ctx);

	if (conn == NULL)
		return 1;
	if (!ok && err != X509_V_ERR_HOSTNAME_MISMATCH && !conn->chain_failed) {
		conn->chain_failed = true;
		conn->chain_error = err;
	}
	if (conn->loglevel >= 2)
		tls_verify_log(ssl, store_ctx, ok);
	return 1;
}

static int configure(struct tls_client *cli, const struct tls_client_settings *set, str_t *error)
{
	SSL_CTX *ctx = cli->ctx;
	struct tls_cipher_spec spec = {
	        .param = set->grade_param != NULL ? set->grade_param : "cipher grade",
	        .grade = set->grade,
	        .grades = &set->grades,
	        .exclude = set->exclude_ciphers,
	        .exclude_param =
	                set->exclude_param != NULL ? set->exclude_param : "excluded ciphers",
	};

	SSL_CTX_set_options(ctx, SSL_OP_ALL | SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
	if (tls_ctx_set_protocols(ctx,
	                          set->protocols_param != NULL ? set->protocols_param : "protocols",
	                          set->protocols, error) < 0 ||
	    tls_ctx_set_ciphers(ctx, &spec, &cli->cipher_list, error) < 0)
		return -1;
	if (set->cert_file != NULL && *set->cert_file != '\0' &&
	    tls_ctx_load_cert_key(ctx, set->cert_file, set->key_file, error) < 0)
		return -1;
	if (tls_ctx_load_cas(ctx, set->ca_file, set->ca_path, false, error) < 0)
		return -1;
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, verify_cb);
	/* Client-side caching through on_new_session() only: OpenSSL's
	 * internal store is for servers. */
	SSL_CTX_set_session_cache_mode(ctx,
	                               SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(ctx, on_new_session);
	if (set->loglevel >= 2)
		SSL_CTX_set_info_callback(ctx, tls_info_cb);
	return 0;
}

int tls_client_new(const struct tls_client_settings *set, struct tls_client **cli_r, str_t *error)
{
	struct tls_client *cli;

	if (tls_ex_init(error) < 0)
		return -1;
	pthread_once(&conn_once, conn_index_init);
	if (conn_index < 0) {
		str_append(error, "cannot allocate an OpenSSL ex_data index");
		return -1;
	}
	cli = xcalloc(1, sizeof(*cli));
	cli->loglevel = set->loglevel;
	cli->sessions = hash_new(session_free);
	ERR_clear_error();
	cli->ctx = SSL_CTX_new(TLS_client_method());
	if (cli->ctx == NULL) {
		str_append(error, "cannot create a TLS client context: ");
		tls_errors_append(error);
		tls_client_free(&cli);
		return -1;
	}
	if (configure(cli, set, error) < 0) {
		tls_client_free(&cli);
		return -1;
	}
	*cli_r = cli;
	return 0;
}

void tls_client_free(struct tls_client **clip)
{
	struct tls_client *cli = *clip;

	if (cli == NULL)
		return;
	SSL_CTX_free(cli->ctx); /* live SSLs keep their reference */
	free(cli->cipher_list);
	hash_destroy(&cli->sessions);
	free(cli);
	*clip = NULL;
}

SSL *tls_client_ssl_new(struct tls_client *cli, const char *peer, const char *sni,
                        const char *verify_name)
{
	SSL *ssl = SSL_new(cli->ctx);
	struct client_conn *conn;

	if (ssl == NULL)
		return NULL;
	conn = xcalloc(1, sizeof(*conn));
	conn->loglevel = cli->loglevel;
	conn->chain_error = X509_V_OK;
	if (SSL_set_ex_data(ssl, conn_index, conn) != 1) {
		free(conn);
		SSL_free(ssl);
		return NULL;
	}
	if (tls_ssl_set_peer(ssl, peer) < 0 ||
	    (sni != NULL && SSL_set_tlsext_host_name(ssl, sni) != 1)) {
		SSL_free(ssl);
		return NULL;
	}
	if (verify_name != NULL) {
		/* Why no partial wildcards: Postfix matches "*.example.com"
		 * only as a whole label, never "mx*.example.com". */
		SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		if (SSL_set1_host(ssl, verify_name) != 1) {
			SSL_free(ssl);
			return NULL;
		}
	}
	SSL_set_connect_state(ssl);
	if (cli->loglevel >= 2) {
		log_info("setting up TLS connection to %s", tls_ssl_peer(ssl));
		log_info("%s: TLS cipher list \"%s\"", tls_ssl_peer(ssl), cli->cipher_list);
	}
	return ssl;
}
