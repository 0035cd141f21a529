/**
 * What a handler returns to answer the peer: to an ask, the reply; to a plain
 * emit, a message of the same event sent back.
 *
 * @since 0.1.0
 */
import type { Inspectable } from "effect/Inspectable"
import type { Pipeable } from "effect/Pipeable"
import { pipeableInspectable } from "./internal/data.js"

/**
 * @since 0.1.0
 * @category type ids
 */
export const TypeId: unique symbol = Symbol.for("effect-neffos/Reply")

/**
 * @since 0.1.0
 * @category type ids
 */
export type TypeId = typeof TypeId

/**
 * @since 0.1.0
 * @category models
 */
export interface Reply extends Pipeable, Inspectable {
  readonly [TypeId]: TypeId
  readonly _tag: "Reply"
  readonly body: string | Uint8Array
}

const proto = { [TypeId]: TypeId, _tag: "Reply" as const }
pipeableInspectable(proto, (self: Reply) => ({ _id: "Reply", body: self.body }))

/**
 * A reply whose body is sent as it is: a string as a text frame, bytes as a binary frame.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (body: string | Uint8Array): Reply => {
  const self = Object.create(proto)
  self.body = body
  return self
}

/**
 * A text reply.
 *
 * @since 0.1.0
 * @category constructors
 */
export const text: (body: string) => Reply = make

/**
 * A binary reply.
 *
 * @since 0.1.0
 * @category constructors
 */
export const binary: (body: Uint8Array) => Reply = make

/**
 * A text reply holding `JSON.stringify(value)`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const json = (value: unknown): Reply => make(JSON.stringify(value))

/**
 * The empty reply (`<wait>;;;;;;` to an ask).
 *
 * @since 0.1.0
 * @category constructors
 */
export const empty: Reply = make("")

/**
 * @since 0.1.0
 * @category guards
 */
export const isReply = (u: unknown): u is Reply => typeof u === "object" && u !== null && TypeId in u
