/* cmd_serve.c: `pdr serve` (the HTTP service) arrives with its own issue. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

int cmd_serve(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: pdr serve DBDIR [--host 127.0.0.1] [--port 8080] [--threads N]\n\n"
                   "Not yet implemented.\n");
            return EXIT_OK;
        }
    }
    cli_error("serve", "not yet implemented");
    return EXIT_RUNTIME;
}
