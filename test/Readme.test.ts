/**
 * The README's TypeScript snippets compile as written: each one is, line for line,
 * part of a file under examples/readme/ (whole, or indented inside an `Effect.gen`
 * for the snippets that are statements), and `npm test` typechecks those files.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Fs from "node:fs"
import * as path from "node:path"

const root = path.join(import.meta.dirname, "..")
const readme = Fs.readFileSync(path.join(root, "README.md"), "utf8")
const snippets = Array.from(readme.matchAll(/```ts\n([\s\S]*?)```/g), (match) => match[1])
const dir = path.join(root, "examples", "readme")
const files = Fs.readdirSync(dir).filter((name) => name.endsWith(".ts")).map((name) => ({
  name,
  lines: Fs.readFileSync(path.join(dir, name), "utf8").split("\n")
}))

/** The file that holds `snippet` as consecutive lines, all with the same indentation. */
const holder = (snippet: string): string | undefined => {
  const wanted = snippet.replace(/\n$/, "").split("\n").map((line) => line.trimEnd())
  for (const { lines, name } of files) {
    for (let i = 0; i + wanted.length <= lines.length; i++) {
      const first = lines[i]
      if (!first.endsWith(wanted[0])) continue
      const indent = first.slice(0, first.length - wanted[0].length)
      if (indent.trim() !== "") continue
      if (wanted.every((line, k) => lines[i + k] === (line === "" ? "" : indent + line))) return name
    }
  }
  return undefined
}

describe("README", () => {
  it("has TypeScript snippets", () => {
    assert.isAtLeast(snippets.length, 20)
  })

  for (const [i, snippet] of snippets.entries()) {
    const title = snippet.split("\n").find((line) => line.trim() !== "" && !line.startsWith("import"))
    it(`snippet ${i + 1} (${title?.slice(0, 60)}) is part of a typechecked file in examples/readme/`, () => {
      assert.isDefined(holder(snippet), `not found verbatim under examples/readme/:\n${snippet}`)
    })
  }
})
