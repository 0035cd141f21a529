// Checked by test/Readme.test.ts: a service the README's snippets use.
import { Context, Effect } from "effect"

/** The application's own service the README's handlers use. */
export class Calendar extends Context.Tag("readme/Calendar")<Calendar, {
  readonly isWorkday: (date: Date) => boolean
  readonly describe: (input: string) => Effect.Effect<string>
}>() {}
