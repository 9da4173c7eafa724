import { Init1764000000000 } from './1764000000000-Init.js';
import { RegistryLifecycle1764100000000 } from './1764100000000-RegistryLifecycle.js';
import { BuildCancellation1764300000000 } from './1764300000000-BuildCancellation.js';
import { RolloutWatch1764500000000 } from './1764500000000-RolloutWatch.js';
import { VersionCounter1764600000000 } from './1764600000000-VersionCounter.js';
import { ResolveInvalidation1764700000000 } from './1764700000000-ResolveInvalidation.js';
import { NotificationOutbox1764800000000 } from './1764800000000-NotificationOutbox.js';

/** Every migration, oldest first, as classes: globs would not survive compilation to dist/. */
export const REGISTRY_MIGRATIONS = [Init1764000000000, RegistryLifecycle1764100000000, BuildCancellation1764300000000, RolloutWatch1764500000000, VersionCounter1764600000000, ResolveInvalidation1764700000000, NotificationOutbox1764800000000];
