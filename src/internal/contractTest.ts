/** @internal */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import type * as Contract from "../Contract.js"
import type * as Errors from "../Errors.js"
import * as Events from "../Events.js"
import type * as Message from "../Message.js"
import type * as TestServer from "../TestServer.js"
import * as internal from "./contractClient.js"
import * as codec from "./contractCodec.js"
import { UnexpectedMessage } from "./testServer.js"

const describe = (event: Contract.Push, expected?: { readonly room?: unknown; readonly payload?: unknown }) => {
  const parts = [`push ${event.namespace}/${event.name}`]
  if (expected?.room !== undefined) parts.push(`in room ${JSON.stringify(expected.room)}`)
  if (expected?.payload !== undefined) parts.push("with the expected payload")
  return parts.join(" ")
}

/** The payload of `m` if it is a push of `event` matching `expected`. */
const match = (
  event: Contract.Push,
  expected: { readonly room?: unknown; readonly payload?: unknown } | undefined,
  m: Message.Message
): Either.Either<unknown, void> => {
  if (m.native || m.error !== undefined || m.namespace !== event.namespace || m.event !== event.name) {
    return Either.left(undefined)
  }
  if (expected?.room !== undefined && m.room !== codec.encodeRoom(event.room, expected.room)) {
    return Either.left(undefined)
  }
  const decoded = codec.decodeBody(codec.codecOf(event.payload), m)
  if (Either.isLeft(decoded)) return Either.left(undefined)
  if (
    expected?.payload !== undefined &&
    !Schema.equivalence(event.payload as Schema.Schema<unknown>)(decoded.right, expected.payload)
  ) {
    return Either.left(undefined)
  }
  return Either.right(decoded.right)
}

/** @internal */
export const connect = (
  testServer: TestServer.TestServer,
  contract: Contract.Any,
  options?: TestServer.ContractConnectOptions<any, any>
): Effect.Effect<TestServer.ContractTestClient<any>, Errors.HandshakeRejected | Errors.HandshakeError, any> =>
  Effect.gen(function*() {
    const { handlers, ...rest } = options ?? {}
    const events = Events.client(internal.clientEventsTable(contract, (handlers ?? {}) as any)) as any
    const client = yield* testServer.connect({ ...rest, events })
    const typed = internal.makeClient(client.client, contract)
    const expectPush = (event: Contract.Push, expected?: { readonly room?: unknown; readonly payload?: unknown }) =>
      Effect.flatMap(client.next, (m) => {
        const matched = match(event, expected, m)
        return Either.isRight(matched)
          ? Effect.succeed(matched.right)
          : Effect.fail(new UnexpectedMessage({ expected: describe(event, expected), received: m }))
      })
    const awaitPush = (event: Contract.Push, expected?: { readonly room?: unknown; readonly payload?: unknown }) =>
      Effect.flatMap(client.next, function loop(m): Effect.Effect<unknown, Errors.ConnectionClosed> {
        const matched = match(event, expected, m)
        return Either.isRight(matched) ? Effect.succeed(matched.right) : Effect.flatMap(client.next, loop)
      })
    const result: TestServer.ContractTestClient<any> = {
      ...client,
      typed,
      connect: (namespace: string, options?: any) => typed.connect(namespace, options),
      join: (namespace: string, room: unknown, options?: any) =>
        Effect.flatMap(typed.connect(namespace, options), (ns: any) => ns.joinRoom(room, options)),
      expectPush: expectPush as any,
      awaitPush: awaitPush as any
    } as any
    return result
  })
