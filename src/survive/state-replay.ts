// Rebuilds a session's state on a freshly logged-in server from the tracker's ReplayStep list
// (contracts.ts): a query step is a simple Query, a parse step is Parse + Sync; steps run one
// after the other, each up to its ReadyForQuery. Every answer is absorbed (none reaches the
// client); an ErrorResponse fails the replay, and so does a transaction left open (a step
// must not leave the session somewhere the client did not leave it). Resolves with the
// ParameterStatus values the server reported on the way (a replayed SET of a reported setting).
import type net from 'node:net';
import type { ReplayStep } from './contracts';
import { parseMessage, queryMessage, syncMessage } from '../protocol/frontend-messages';
import { readErrorFields, readParameterStatus } from '../protocol/message-reader';
import { BackendMessageType as T } from '../protocol/constants';
import { SessionMoveError } from '../errors';
import { exchange } from './server-exchange';

const IDLE = 0x49; // 'I'

export async function replayState(socket: net.Socket, steps: readonly ReplayStep[]): Promise<Map<string, string>> {
  const reported = new Map<string, string>();
  for (const step of steps) await runStep(socket, step, reported);
  return reported;
}

function runStep(socket: net.Socket, step: ReplayStep, reported: Map<string, string>): Promise<void> {
  const what = step.kind === 'query' ? `replaying "${step.sql}"` : `re-preparing statement "${step.name}"`;
  return new Promise((resolve, reject) => {
    let error: SessionMoveError | undefined;
    const dispose = exchange(socket, {
      failed: reject,
      message(type, body) {
        if (type === T.ErrorResponse) {
          const f = readErrorFields(body, 0, body.length);
          error ??= new SessionMoveError(`${what} failed on the new server: ${f?.code ?? '?'} ${f?.message ?? ''}`.trim(), f?.code);
        } else if (type === T.ParameterStatus) {
          const p = readParameterStatus(body, 0, body.length);
          if (p) reported.set(p.name, p.value);
        } else if (type === T.ReadyForQuery) {
          dispose();
          if (!error && body[0] !== IDLE) error = new SessionMoveError(`${what} left the session inside a transaction`);
          if (error) reject(error);
          else resolve();
        }
      },
    });
    socket.write(step.kind === 'query' ? queryMessage(step.sql) : Buffer.concat([parseMessage(step.name, step.query, step.paramTypes), syncMessage()]));
  });
}
