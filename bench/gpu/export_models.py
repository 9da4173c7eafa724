"""Exports the benchmark models to ONNX on the GPU machine (random weights, nothing downloaded).

usage: python3 export_models.py OUT_DIR [--models resnet50,mobilenet_v3_large,bert-base]
CNNs: input 'input' float32[batch,3,224,224]; BERT-base: input 'input_ids' int64[batch,128]
(attention mask all ones, built inside the model). Dynamic batch, opset 17, legacy exporter.
"""
import argparse, json, os, sys, time
import torch, torchvision


class BertIds(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids):
        return self.model(input_ids=input_ids).last_hidden_state


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('out')
    ap.add_argument('--models', default='resnet50,mobilenet_v3_large,bert-base')
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(0)
    for name in args.models.split(','):
        t0 = time.time()
        path = os.path.join(args.out, name + '.onnx')
        if name == 'bert-base':
            from transformers import BertConfig, BertModel
            model = BertIds(BertModel(BertConfig()).eval())
            x = torch.randint(0, 30000, (1, 128))
            names, outs = ['input_ids'], ['hidden']
        else:
            model = getattr(torchvision.models, name)().eval()
            x = torch.randn(1, 3, 224, 224)
            names, outs = ['input'], ['logits']
        with torch.inference_mode():
            torch.onnx.export(model, (x,), path, opset_version=17, dynamo=False, input_names=names, output_names=outs,
                              dynamic_axes={names[0]: {0: 'batch'}, outs[0]: {0: 'batch'}})
        print(json.dumps({'model': name, 'path': path, 'bytes': os.path.getsize(path), 'seconds': round(time.time() - t0, 2)}),
              flush=True)


if __name__ == '__main__':
    sys.exit(main())
