/* test_queue_id.c - unit tests for lib/queue/queue_id: IDs made in a tight
 * loop are valid, unique and strictly ascending as strings; IDs of forked
 * processes never collide; the encoding of known times and PIDs; the
 * arrival time reads back; validation of IDs typed by an administrator. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "base/hash.h"
#include "base/mem.h"
#include "queue/queue_id.h"

static void test_tight_loop_order(void **state)
{
	char prev[QUEUE_ID_SIZE] = "", id[QUEUE_ID_SIZE];
	struct timeval before, after, arrival, decoded;

	(void)state;
	gettimeofday(&before, NULL);
	for (int i = 0; i < 200000; i++) {
		queue_id_generate(id, &arrival);
		assert_int_equal(strlen(id), QUEUE_ID_LEN);
		assert_true(queue_id_valid(id));
		if (strcmp(prev, id) >= 0)
			fail_msg("ID %d not above the previous one: %s after %s", i, id, prev);
		assert_int_equal(queue_id_time(id, &decoded), 0);
		assert_int_equal(decoded.tv_sec, arrival.tv_sec);
		assert_int_equal(decoded.tv_usec, arrival.tv_usec);
		memcpy(prev, id, sizeof(prev));
	}
	gettimeofday(&after, NULL);
	/* The last ID's time is near the clock: 200,000 IDs can run ahead of
	 * it by at most that many microseconds. */
	assert_int_equal(queue_id_time(prev, &decoded), 0);
	assert_true(decoded.tv_sec >= before.tv_sec);
	assert_true(decoded.tv_sec <= after.tv_sec + 1);
	/* Letters and digits only, no vowels. */
	for (const char *p = prev; *p; p++)
		assert_null(strchr("AEIOUaeiou", *p));
}

#define CHILDREN 6
#define PER_CHILD 20000

static void test_unique_across_fork(void **state)
{
	int fds[CHILDREN][2];
	pid_t pids[CHILDREN];
	hash_t *seen = hash_new(NULL);
	char id[QUEUE_ID_SIZE];

	(void)state;
	for (int c = 0; c < CHILDREN; c++) {
		assert_int_equal(pipe(fds[c]), 0);
		pids[c] = fork();
		assert_true(pids[c] >= 0);
		if (pids[c] == 0) {
			FILE *out = fdopen(fds[c][1], "w");

			close(fds[c][0]);
			for (int i = 0; i < PER_CHILD; i++) {
				queue_id_generate(id, NULL);
				fprintf(out, "%s\n", id);
			}
			fclose(out);
			_exit(0);
		}
		close(fds[c][1]);
	}
	for (int c = 0; c < CHILDREN; c++) {
		FILE *in = fdopen(fds[c][0], "r");
		char line[64], prev[QUEUE_ID_SIZE] = "";
		int n = 0, status;

		while (fgets(line, sizeof(line), in) != NULL) {
			line[strcspn(line, "\n")] = '\0';
			assert_true(queue_id_valid(line));
			if (hash_contains(seen, line))
				fail_msg("duplicate ID %s from child %d", line, c);
			hash_put(seen, line, NULL);
			assert_true(strcmp(prev, line) < 0);
			memcpy(prev, line, sizeof(prev));
			n++;
		}
		fclose(in);
		assert_int_equal(waitpid(pids[c], &status, 0), pids[c]);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		assert_int_equal(n, PER_CHILD);
	}
	assert_int_equal(hash_count(seen), CHILDREN * PER_CHILD);
	hash_destroy(&seen);
}

static void test_known_encoding(void **state)
{
	char id[QUEUE_ID_SIZE];
	struct timeval tv = {0, 0}, back;

	(void)state;
	queue_id_make(&tv, 0, id);
	assert_string_equal(id, "00000000000000");
	tv.tv_sec = 52;
	tv.tv_usec = 999999;
	queue_id_make(&tv, 51, id);
	/* 52 seconds are "000010" in six base-52 digits */
	assert_int_equal(queue_id_time(id, &back), 0);
	assert_int_equal(back.tv_sec, 52);
	assert_int_equal(back.tv_usec, 999999);
	assert_memory_equal(id, "000010", 6);
	assert_int_equal(id[13], 'z'); /* 51 is the last digit */
	tv.tv_sec = 1700000000;
	tv.tv_usec = 123456;
	queue_id_make(&tv, 4194303, id);
	assert_true(queue_id_valid(id));
	assert_int_equal(queue_id_time(id, &back), 0);
	assert_int_equal(back.tv_sec, 1700000000);
	assert_int_equal(back.tv_usec, 123456);
}

static void test_order_follows_time(void **state)
{
	struct {
		time_t sec;
		suseconds_t usec;
	} times[] = {{0, 0},  {0, 1},          {0, 999999},     {1, 0},          {51, 999999},
	             {52, 0}, {1700000000, 5}, {1700000000, 6}, {1700000001, 0}, {4102444800, 0}};
	char prev[QUEUE_ID_SIZE] = "", id[QUEUE_ID_SIZE];

	(void)state;
	for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
		struct timeval tv = {times[i].sec, times[i].usec};

		/* a higher PID earlier must not change the order */
		queue_id_make(&tv, (pid_t)(4000000 - (pid_t)i), id);
		if (i > 0 && strcmp(prev, id) >= 0)
			fail_msg("%s (t=%ld.%06ld) does not sort after %s", id, (long)tv.tv_sec,
			         (long)tv.tv_usec, prev);
		memcpy(prev, id, sizeof(prev));
	}
}

static void test_validation_table(void **state)
{
	static const struct {
		const char *id;
		bool valid;
	} cases[] = {
	        {"4Zb2Lk0Fqx01Tm", true},   {"00000000000000", true},
	        {"zzzzzz0000zzzz", true},   {"", false},
	        {"4Zb2Lk0Fqx01T", false}, /* 13 */
	        {"4Zb2Lk0Fqx01Tmm", false}, /* 15 */
	        {"4Zb2Lk0Fqx01TA", false}, /* vowel */
	        {"4Zb2Lk0Fqx01Te", false}, /* vowel */
	        {"4Zb2Lk0Fqx01T-", false},  {"4Zb2Lk0Fqx01T ", false},
	        {"4Zb2Lk0Fqx01T/", false},  {"../../etc/pass", false},
	        {"4Zb2Lkzzzz01Tm", false}, /* microseconds >= 1,000,000 */
	        {"4Zb2Lk7580zzzz", true}, /* 7*52^3+5*52^2+8*52 = 998,192 */
	        {"4Zb2Lk7600zzzz", false}, /* 7*52^3+6*52^2 = 1,000,480 */
	        {"1A2B3C4D5E6F70", false},  {"ALL", false},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct timeval tv;

		if (queue_id_valid(cases[i].id) != cases[i].valid)
			fail_msg("queue_id_valid(\"%s\") should be %s", cases[i].id,
			         cases[i].valid ? "true" : "false");
		assert_int_equal(queue_id_time(cases[i].id, &tv), cases[i].valid ? 0 : -1);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_tight_loop_order), cmocka_unit_test(test_unique_across_fork),
	        cmocka_unit_test(test_known_encoding),   cmocka_unit_test(test_order_follows_time),
	        cmocka_unit_test(test_validation_table),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
