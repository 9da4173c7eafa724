import { BuildTargetEntity } from './build-target.entity.js';
import { BuildEntity } from './build.entity.js';
import { ModelVersionEntity } from './model-version.entity.js';
import { ModelEntity } from './model.entity.js';
import { PlanEntity } from './plan.entity.js';

export * from './build-target.entity.js';
export * from './build.entity.js';
export * from './model-version.entity.js';
export * from './model.entity.js';
export * from './plan.entity.js';

export const REGISTRY_ENTITIES = [ModelEntity, ModelVersionEntity, BuildEntity, BuildTargetEntity, PlanEntity];
