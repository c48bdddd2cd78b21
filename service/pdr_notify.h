/* pdr_notify.h: tell the service manager what pdr serve is doing (systemd's sd_notify protocol,
 * without libsystemd): one datagram of "KEY=value" lines to the Unix socket named by the
 * NOTIFY_SOCKET environment variable ("/path", or "@name" for the abstract namespace). A unit with
 * Type=notify then counts the server started only once the database is loaded (READY=1), and
 * `systemctl status` shows the STATUS= line. Without NOTIFY_SOCKET nothing is sent.
 *
 * Thread-safety: no state; safe from any thread. Never fails the caller: the manager may be gone.
 */
#ifndef PDR_NOTIFY_H
#define PDR_NOTIFY_H

/* Send state (e.g. "READY=1\nSTATUS=serving 1049 proteins"). Returns 1 when sent, 0 when there is
 * no NOTIFY_SOCKET, -1 when it could not be sent (a bad address, no listener). */
int pdr_notify(const char *state);

#endif
