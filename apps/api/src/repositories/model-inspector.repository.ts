import { Injectable } from '@nestjs/common';
import { checkModel, type ModelInfo } from '../../../../libs/native/index.js';

/** Reads an ONNX file with the native parser (off the event loop) and describes it. */
@Injectable()
export class ModelInspectorRepository {
  inspect(path: string): Promise<ModelInfo> {
    return checkModel(path);
  }
}
