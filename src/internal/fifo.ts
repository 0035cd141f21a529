/**
 * A first-in first-out queue on an array with a moving head: O(1) amortised push
 * and shift, and the consumed part let go of once it is most of the array.
 *
 * @internal
 */

/** @internal */
export class Fifo<A> {
  private items: Array<A | undefined> = []
  private head = 0

  get length(): number {
    return this.items.length - this.head
  }

  push(a: A): void {
    this.items.push(a)
  }

  /** The oldest item, or undefined when empty. */
  peek(): A | undefined {
    return this.head < this.items.length ? this.items[this.head] : undefined
  }

  /** Removes and returns the oldest item (undefined when empty). */
  shift(): A | undefined {
    if (this.head >= this.items.length) return undefined
    const a = this.items[this.head]
    this.items[this.head++] = undefined
    if (this.head === this.items.length) {
      this.items = []
      this.head = 0
    } else if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head)
      this.head = 0
    }
    return a
  }

  clear(): void {
    this.items = []
    this.head = 0
  }
}
