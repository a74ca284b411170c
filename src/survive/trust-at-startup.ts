// Whether the server let the session's user in without asking for anything: its first startup
// answer begins with AuthenticationOk ('R', length 8, code 0 — "Message Formats"). Such a user
// can be logged in again elsewhere without a secret (LoginSecret kind trust), as long as the
// other server trusts it too (else that login fails and the session is not moved). Until auth
// at the proxy is merged, this is how sessions.survive gets a LoginSecret.
export function trustedAtStartup(answer: Buffer): boolean {
  return answer.length >= 9 && answer[0] === 0x52 && answer.readInt32BE(1) === 8 && answer.readInt32BE(5) === 0;
}
