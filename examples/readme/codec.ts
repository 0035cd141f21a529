// Checked by test/Readme.test.ts: the README shows the marked part of this file as it is.
import { Message } from "effect-neffos"

const frame = Message.encode(Message.make({ namespace: "default", room: "lobby", event: "chat", body: "hi" }))
// ";default;lobby;chat;0;0;hi"

const decoded = Message.decode(frame)
if (Message.isMessage(decoded)) console.log(decoded.event, decoded.body)
else console.log("not a neffos frame:", decoded.reason) // decode never throws
