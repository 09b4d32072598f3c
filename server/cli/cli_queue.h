/* cli_queue.h - pieces shared by the `postern queue` subcommands
 * (cli_queue.c dispatches; cli_queue_list.c, cli_queue_cat.c,
 * cli_queue_shape.c each implement one Postfix tool). Internal to the CLI.
 */
#ifndef POSTERN_CLI_QUEUE_H
#define POSTERN_CLI_QUEUE_H

#include "queue/queue_dir.h"

struct config;

/* The queue directory of cfg (queue_directory, hash_queue_depth,
 * hash_queue_names): 0 with *qd_r (caller destroys), or -1 after logging
 * why (a bad hash_queue_names). */
int cli_queue_dir_open(struct config *cfg, struct queue_dir **qd_r);

/* `postern queue cat [-e] [-h] [-b] ID` (postcat -q). argv[0] is "cat".
 * Returns a CLI_EXIT_* status. */
int cli_queue_cat(const struct queue_dir *qd, int argc, char **argv);

/* `postern queue shape [QUEUE...]` (qshape). argv[0] is "shape".
 * Returns a CLI_EXIT_* status. */
int cli_queue_shape(const struct queue_dir *qd, int argc, char **argv);

#endif
