/* pdr_notify.h: tell the service manager what pdr serve is doing (systemd's sd_notify protocol,
 * without libsystemd): one datagram of "KEY=value" lines to the Unix socket named by the
 * NOTIFY_SOCKET environment variable ("/path", or "@name" for the abstract namespace). A unit with
 * Type=notify then counts the server started only once the database is loaded (READY=1), and
 * `systemctl status` shows the STATUS= line. Without NOTIFY_SOCKET nothing is sent.
 *
 * Thread-safety: no state; safe from any thread. pdr_notify_send is also async-signal-safe (a
 * signal handler may send: pdr serve says RELOADING=1 from its SIGHUP handler, before the
 * `kill` that sent the signal has exited, so that systemd ties the reload job to it). Never fails
 * the caller: the manager may be gone.
 */
#ifndef PDR_NOTIFY_H
#define PDR_NOTIFY_H

#include <sys/socket.h>
#include <sys/un.h>

/* Where to send: NOTIFY_SOCKET resolved once. */
typedef struct pdr_notify_target {
    struct sockaddr_un addr;
    socklen_t len; /* 0: nowhere (no NOTIFY_SOCKET, or not a usable address) */
} pdr_notify_target;

/* Resolve NOTIFY_SOCKET into *t; returns 1 when there is somewhere to send, else 0. */
int pdr_notify_target_init(pdr_notify_target *t);

/* Send state (e.g. "READY=1\nSTATUS=serving 1049 proteins") to t. Returns 1 when sent, 0 when t
 * is nowhere, -1 when it could not be sent (no listener). Async-signal-safe. */
int pdr_notify_send(const pdr_notify_target *t, const char *state);

#endif
