// The phases of one session and the moves allowed between them (DESIGN.md, "A session's life").
// Session.transition() is the only writer of a session's phase and checks every move here, so a
// new path through the session is a new row in this table, not a new boolean beside it.
//
//   reading-first-packet  the client's first packet(s): bounded in size and in time (login timer)
//   routing               asking the router for a backend; may wait in the queue
//   connecting            one backend attempt: connect, send, wait for the first answer
//   authenticating        auth.mode proxy: pgwarden checks the client's password itself (auth.query, SCRAM / md5)
//   logging-in            auth.mode proxy: pgwarden logs in to the connected server as the client's user
//   forwarding-cancel     a CancelRequest on its way to the server(s)
//   starting              the server's startup answers flow to the client until ReadyForQuery
//   relaying              a pipe both ways (message headers followed unless TLS passthrough)
//   moving                sessions.survive: the server went away while the session was idle; the
//                         client is paused while a new server is found, logged in and rebuilt
//   closing               the sockets are being closed (an error or queued bytes still flushing)
//   ended                 both sockets closed, every timer cleared
export type Phase = 'reading-first-packet' | 'authenticating' | 'routing' | 'connecting' | 'logging-in' | 'forwarding-cancel' | 'starting' | 'relaying' | 'moving' | 'closing' | 'ended';

const MOVES: Readonly<Record<Phase, readonly Phase[]>> = {
  // SSL 'N' with the backend kept: the StartupMessage goes to that backend (connecting) directly.
  'reading-first-packet': ['authenticating', 'routing', 'connecting', 'forwarding-cancel', 'closing'],
  // To connecting with the backend kept after an SSL 'N'; to routing also for a role without a
  // password (the session stays end to end).
  'authenticating': ['routing', 'connecting', 'closing'],
  'routing': ['connecting', 'closing'],
  // Back to routing on a redispatch; back to reading after the server said 'N' to SSLRequest;
  // straight to relaying for TLS passthrough.
  'connecting': ['routing', 'reading-first-packet', 'starting', 'logging-in', 'relaying', 'closing'],
  // Back to routing when the login was cut off or refused with 57P03 (the client saw nothing of that server).
  'logging-in': ['routing', 'relaying', 'closing'],
  'forwarding-cancel': ['closing'],
  'starting': ['relaying', 'closing'],
  'relaying': ['moving', 'closing'],
  // Moved: relaying on the new server; not moved: closed as without survive.
  'moving': ['relaying', 'closing'],
  'closing': ['ended'],
  'ended': [],
};

/** Whether a session may move from `from` to `to`. */
export function canMove(from: Phase, to: Phase): boolean {
  return MOVES[from].includes(to);
}
