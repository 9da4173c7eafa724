"""Exports the benchmark models to ONNX on the GPU machine (random weights, nothing downloaded).

usage: python3 export_models.py OUT_DIR [--models resnet50,mobilenet_v3_large,bert-base,bert-base-mask,bert-tiny,bert-tiny-mask,bert-tiny-dyn]
CNNs: input 'input' float32[batch,3,224,224]; BERT-base: input 'input_ids' int64[batch,128]
(attention mask all ones, built inside the model). Dynamic batch, opset 17, legacy exporter.
"""
import argparse, json, os, sys, time
import torch, torchvision


class BertIdsMask(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


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
        if name.startswith('bert'):
            from transformers import BertConfig, BertModel
            # bert-tiny*: BERT-base's layer structure at a small size (test fixtures for the CPU machine);
            # *-mask: with an attention_mask input.
            cfg = BertConfig() if name.startswith('bert-base') else BertConfig(
                vocab_size=1000, hidden_size=256, num_hidden_layers=2, num_attention_heads=4, intermediate_size=1024,
                max_position_embeddings=128)
            bert = BertModel(cfg).eval()
            x = (torch.randint(0, cfg.vocab_size, (1, 128)),)
            names, outs = ['input_ids'], ['hidden']
            model = BertIds(bert)
            if name.endswith('-dyn'):  # dynamic sequence length too (the head reshapes read it at run time)
                model = BertIdsMask(bert)
                x = x + (torch.ones(1, 128, dtype=torch.int64),)
                names.append('attention_mask')
            if name.endswith('-mask'):
                model = BertIdsMask(bert)
                x = x + (torch.ones(1, 128, dtype=torch.int64),)
                names.append('attention_mask')
        else:
            model = getattr(torchvision.models, name)().eval()
            x = torch.randn(1, 3, 224, 224)
            names, outs = ['input'], ['logits']
        with torch.inference_mode():
            torch.onnx.export(model, x if isinstance(x, tuple) else (x,), path, opset_version=17, dynamo=False, input_names=names, output_names=outs,
                              dynamic_axes={**{n: ({0: 'batch', 1: 'seq'} if name.endswith('-dyn') else {0: 'batch'}) for n in names},
                                            outs[0]: {0: 'batch', 1: 'seq'} if name.endswith('-dyn') else {0: 'batch'}})
        print(json.dumps({'model': name, 'path': path, 'bytes': os.path.getsize(path), 'seconds': round(time.time() - t0, 2)}),
              flush=True)


if __name__ == '__main__':
    sys.exit(main())
