// Why pgwarden itself closes a session (or gives up on a backend that has not answered yet):
// the backend went down, maintenance, a planned switchover, a reload that moved the backend,
// shutdown, or split-brain fencing. Its own file so the session and the ListenerContext it is
// given can both name it without importing each other.
export type CloseReason = 'down' | 'maint' | 'switchover' | 'reload' | 'shutdown' | 'fenced';
