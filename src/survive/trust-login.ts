// A ServerLogin (contracts.ts) for servers that let the user in without a password (trust in
// pg_hba.conf): StartupMessage with the session's parameters, AuthenticationOk expected as the
// first answer, then ParameterStatus and BackendKeyData collected up to ReadyForQuery. Any other
// authentication request fails the login: answering it needs a secret that only auth at the
// proxy (auth.mode: proxy) keeps. A stand-in until the SCRAM/md5 login of auth at the proxy is
// merged; the mover picks a login by LoginSecret.kind, so both live side by side.
import type { LoginResult, ServerLogin } from './contracts';
import { startupMessage } from '../protocol/frontend-messages';
import { readErrorFields, readParameterStatus } from '../protocol/message-reader';
import { BackendMessageType as T } from '../protocol/constants';
import { SessionMoveError } from '../errors';
import { exchange } from './server-exchange';

const AUTH_OK = 0;

export const trustLogin: ServerLogin = (socket, params) =>
  new Promise<LoginResult>((resolve, reject) => {
    const parameters = new Map<string, string>();
    let processId = 0;
    let secretKey = 0;
    const fail = (err: Error) => {
      dispose();
      reject(err);
    };
    const dispose = exchange(socket, {
      failed: reject,
      message(type, body) {
        switch (type) {
          case T.Authentication: {
            const code = body.length >= 4 ? body.readInt32BE(0) : -1;
            if (code !== AUTH_OK) fail(new SessionMoveError(`the new server asks for a password (authentication request ${code}); a session let in by trust cannot answer it`));
            return;
          }
          case T.ParameterStatus: {
            const p = readParameterStatus(body, 0, body.length);
            if (p) parameters.set(p.name, p.value);
            return;
          }
          case T.BackendKeyData:
            // Protocol 3.0 keys are one Int32 (a longer 3.2 key is not requested: we send 3.0).
            if (body.length >= 8) {
              processId = body.readInt32BE(0);
              secretKey = body.readInt32BE(4);
            }
            return;
          case T.ErrorResponse: {
            const f = readErrorFields(body, 0, body.length);
            fail(new SessionMoveError(`the new server refused the login: ${f?.code ?? '?'} ${f?.message ?? ''}`.trim(), f?.code));
            return;
          }
          case T.ReadyForQuery:
            dispose();
            resolve({ processId, secretKey, parameters });
            return;
          case T.NoticeResponse:
          case T.NegotiateProtocolVersion:
            return;
          default:
            fail(new SessionMoveError(`the new server sent message 0x${type.toString(16)} during login`));
        }
      },
    });
    socket.write(startupMessage(params));
  });
