#!/usr/bin/env node
// Package bin shim: loads tsx's ESM hooks, then runs the TypeScript CLI.
import { register } from 'tsx/esm/api'
register()
await import('../cli.ts')
