import { queueSuite } from "../src/conformance/Queue.ts"
import { storageSuite } from "../src/conformance/Storage.ts"
import * as Memory from "../src/Memory.ts"

storageSuite("memory", Memory.layer)
queueSuite("memory", Memory.layer)
