import { InMemoryBus } from '../src/bus/memory.js'
import { busContractSuite } from './bus-contract.js'

busContractSuite('InMemoryBus', {
  create: (options) => new InMemoryBus(options),
  peer: (bus) => bus,
  // An in-memory history dies with its process: a new bus stands for the restarted one.
  loseHistory: async (bus, options) => {
    await bus.close()
    return new InMemoryBus(options)
  },
})
