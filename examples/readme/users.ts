// Checked by test/Readme.test.ts: what the README's auth recipe uses.
export { events, Users, UsersLive } from "../auth.js"
