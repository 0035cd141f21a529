/**
 * What makes a data type of this package behave like Effect's own: `pipe`, and
 * `toJSON` / `toString` / Node's inspect showing its fields.
 *
 * @internal
 */
import * as Inspectable from "effect/Inspectable"
import { pipeArguments } from "effect/Pipeable"

/**
 * Adds `pipe`, `toString` and Node's inspect to a prototype whose instances are
 * shown by `toJSON`.
 *
 * @internal
 */
export const pipeableInspectable = (proto: object, toJSON: (self: any) => unknown): void => {
  Object.defineProperties(proto, {
    pipe: {
      value(this: unknown) {
        return pipeArguments(this, arguments)
      }
    },
    toJSON: {
      value(this: unknown) {
        return toJSON(this)
      }
    },
    toString: {
      value(this: unknown) {
        return Inspectable.format(toJSON(this))
      }
    },
    [Inspectable.NodeInspectSymbol]: {
      value(this: unknown) {
        return toJSON(this)
      }
    }
  })
}
