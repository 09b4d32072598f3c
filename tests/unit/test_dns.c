/* test_dns.c - unit tests for lib/dns/dns.c that need no DNS server:
 * the dns_servers syntax, the callback contract (never before the call
 * returns, never after a cancel), a server that refuses (a closed
 * loopback port) giving DNS_TEMPFAIL, never "not found", and a client
 * address that is not an address giving "unknown". Answers from a real
 * DNS server are tested in tests/system/test_smtpd_dns.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <event2/event.h>

#include "base/str.h"
#include "dns/dns.h"

struct got {
	int calls;
	enum dns_status status;
	char name[64];
};

static void on_answer(const struct dns_answer *a, void *ctx)
{
	struct got *g = ctx;

	g->calls++;
	g->status = a->status;
}

static void on_name(const char *name, const char *reverse, void *ctx)
{
	struct got *g = ctx;

	(void)reverse;
	g->calls++;
	strncpy(g->name, name, sizeof(g->name) - 1);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	*(int *)arg = 1;
}

/* Run the loop until *calls is set, at most 20 s. */
static void run_until(struct event_base *base, const int *calls)
{
	int timed_out = 0;
	struct timeval tv = {20, 0};
	struct event *t = evtimer_new(base, on_timeout, &timed_out);

	evtimer_add(t, &tv);
	while (*calls == 0 && !timed_out)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(t);
	assert_int_equal(timed_out, 0);
}

static void test_bad_server_list(void **state)
{
	struct event_base *base = event_base_new();
	struct dns *dns = (struct dns *)1;
	str_t error;

	(void)state;
	str_init(&error);
	assert_int_equal(dns_new(base, "not an address", &dns, &error), -1);
	assert_null(dns);
	assert_non_null(strstr(str_c(&error), "dns_servers: bad server list"));
	str_free(&error);
	event_base_free(base);
}

static void test_refused_is_tempfail(void **state)
{
	struct event_base *base = event_base_new();
	struct dns *dns = NULL;
	struct got g = {0};
	struct dns_req *req;
	str_t error;

	(void)state;
	str_init(&error);
	/* Port 1 on loopback: nothing listens, the query is refused. */
	assert_int_equal(dns_new(base, "127.0.0.1:1", &dns, &error), 0);
	req = dns_query(dns, "example.test", DNS_T_MX, on_answer, &g);
	assert_non_null(req);
	assert_int_equal(g.calls, 0);
	run_until(base, &g.calls);
	assert_int_equal(g.calls, 1);
	assert_int_equal(g.status, DNS_TEMPFAIL);
	dns_destroy(&dns);
	assert_null(dns);
	str_free(&error);
	event_base_free(base);
}

static void test_cancel_and_not_an_address(void **state)
{
	struct event_base *base = event_base_new();
	struct dns *dns = NULL;
	struct got cancelled = {0}, g = {0};
	struct dns_req *req;
	str_t error;

	(void)state;
	str_init(&error);
	assert_int_equal(dns_new(base, "127.0.0.1:1", &dns, &error), 0);
	req = dns_query(dns, "example.test", DNS_T_A, on_answer, &cancelled);
	dns_cancel(&req);
	assert_null(req);
	dns_cancel(&req); /* no-op */
	req = dns_client_name(dns, "no-such-address", on_name, &g);
	assert_non_null(req);
	assert_int_equal(g.calls, 0);
	run_until(base, &g.calls);
	assert_string_equal(g.name, "unknown");
	/* Let the cancelled query end inside c-ares: its callback stays
	 * silent. */
	{
		struct got wait = {0};

		dns_query(dns, "other.test", DNS_T_A, on_answer, &wait);
		run_until(base, &wait.calls);
	}
	assert_int_equal(cancelled.calls, 0);
	dns_destroy(&dns);
	str_free(&error);
	event_base_free(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_bad_server_list),
	        cmocka_unit_test(test_refused_is_tempfail),
	        cmocka_unit_test(test_cancel_and_not_an_address),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
