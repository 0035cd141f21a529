import { suite } from "./History.suite.js"

// one instance, its history in memory
suite({ name: "one instance" })
