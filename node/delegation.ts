/**
 * Delegates, as the release engine asks about them: who may release whose jobs besides their
 * owners. Read from this peer's copy of the directory (sites and terminals hold it), which
 * the `delegation` service opens once at start; every answer reads the live document, so a
 * delegate named or removed on central counts here as soon as the change arrives.
 */
import type * as Y from 'yjs'
import { directoryDoc } from '../crdt/names.ts'
import { delegatesOf, delegatorsOf } from '../crdt/directory.ts'
import type { DocStore } from '../crdt/store.ts'
import type { Delegation } from '../devices/jobs/types.ts'
import { serviceFactory, type ServiceFactory, type Startable } from './compose.ts'

/** The `delegation` service: a {@link Delegation} over the directory, answering "nobody" until started. */
export interface DelegationService extends Delegation, Startable {}

export const delegationService = (): ServiceFactory<DelegationService> => serviceFactory<{ store: DocStore, documents: Startable }, DelegationService>(
  ['store', 'documents'], ({ store }) => {
    let directory: Y.Doc | undefined
    return {
      delegatesOf: (owner) => directory === undefined ? [] : delegatesOf(directory, owner),
      delegatorsOf: (user) => directory === undefined ? [] : delegatorsOf(directory, user),
      start: async () => { directory = await store.open(directoryDoc()) },
      stop: async () => { directory = undefined }
    }
  })
