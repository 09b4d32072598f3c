/* privfiles.c - the files a daemon reads but may not open itself (see
 * privfiles.h): which they are, opening them as root, and the "-f
 * FD:PATH" argument that hands them over.
 *
 * Used by master (server/master/master_service.c) and the daemon
 * skeleton (daemon.c, event_server.c).
 */
#include "daemon/privfiles.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/mem.h"
#include "base/parse.h"
#include "conf/config.h"
#include "daemon/tls_config.h"

/* The parameters naming files smtpd reads with root's rights. */
static const char *const smtpd_files[] = {
        "smtpd_tls_CAfile", /* public, but Postfix reads it as root too */
        "smtpd_tls_cert_file",   "smtpd_tls_key_file",
        "smtpd_tls_eccert_file", "smtpd_tls_eckey_file",
};

static void add_unique(strv_t *paths, const char *path)
{
	if (path == NULL || path[0] == '\0')
		return;
	for (size_t i = 0; i < paths->n; i++)
		if (strcmp(paths->v[i], path) == 0)
			return;
	strv_add(paths, path);
}

void privfiles_collect(struct config *cfg, const char *command, strv_t *paths)
{
	const strv_t *chain;

	struct smtpd_tls_config tc;
	str_t error;
	bool enabled;

	if (command == NULL || strcmp(command, "smtpd") != 0)
		return;
	/* A service without TLS gets no key (a bad level is reported by the
	 * daemon and by postern check, not here). */
	str_init(&error);
	enabled = smtpd_tls_config_read(cfg, &tc, &error) == 0 && smtpd_tls_config_enabled(&tc);
	smtpd_tls_config_free(&tc);
	str_free(&error);
	if (!enabled)
		return;
	for (size_t i = 0; i < sizeof(smtpd_files) / sizeof(smtpd_files[0]); i++)
		add_unique(paths, config_str(cfg, smtpd_files[i]));
	chain = config_list(cfg, "smtpd_tls_chain_files");
	for (size_t i = 0; chain != NULL && i < chain->n; i++)
		add_unique(paths, chain->v[i]);
}

void privfiles_open(const strv_t *paths, strv_t *argv)
{
	for (size_t i = 0; i < paths->n; i++) {
		/* O_NONBLOCK: a FIFO put where a key should be does not hang
		 * master's child; the daemon reads a regular file anyway. */
		int fd = open(paths->v[i], O_RDONLY | O_NOCTTY | O_NONBLOCK);

		if (fd < 0)
			continue;
		if (argv == NULL) {
			fs_inherited_add(paths->v[i], fd);
			continue;
		}
		char *arg = xasprintf("%d:%s", fd, paths->v[i]);

		strv_add(argv, "-f");
		strv_add(argv, arg);
		free(arg);
	}
}

int privfiles_arg(const char *arg)
{
	const char *colon = strchr(arg, ':');
	char num[16];
	uint64_t fd;

	if (colon == NULL || colon == arg || (size_t)(colon - arg) >= sizeof(num) ||
	    colon[1] != '/')
		return -1;
	memcpy(num, arg, (size_t)(colon - arg));
	num[colon - arg] = '\0';
	if (parse_uint64(num, 0, 65535, &fd) < 0 || fcntl((int)fd, F_GETFD) < 0)
		return -1;
	fs_inherited_add(colon + 1, (int)fd);
	return 0;
}
