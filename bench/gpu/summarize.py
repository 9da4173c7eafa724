"""Renders the markdown tables of REPORT.md from a device run's files.

usage: python3 summarize.py RESULTS.jsonl [BASELINE.json]
       python3 summarize.py --pivot RESULTS.jsonl BASELINE.json [TAG ...]
         one row per (model, batch): GPU ms p50 of each bench tag (default: fp32 fp16 fp32-cublaslt
         fp16-cublaslt fp32-autotune fp16-autotune) beside PyTorch fp32 eager and fp16 + CUDA graph
"""
import json, sys

TARGETS = {  # (model, precision, batch) -> (kind, value) from the issue
    ('resnet50', 'fp16', 1): ('latency_ms', 0.5), ('resnet50', 'fp16', 256): ('throughput', 30000),
    ('bert-base', 'fp16', 1): ('latency_ms', 0.8), ('bert-base', 'fp16', 32): ('throughput', 8000),
    ('mobilenet_v3_large', 'fp16', 1): ('latency_ms', 0.35),
}


def pivot(results, baseline, tags):
    tab, base = {}, {}
    for l in open(results):
        r = json.loads(l)
        if r['kind'] == 'bench' and not isinstance(r['result'], str):
            tab[(r['model'], r['batch'], r.get('tag'))] = r['result']
    for r in json.load(open(baseline))['rows']:
        base[(r['model'], r['batch'], r['variant'])] = r['ms']
    keys = sorted({(m, b) for (m, b, _) in tab}, key=lambda k: (['resnet50', 'mobilenet_v3_large', 'bert-base'].index(k[0]), k[1]))
    print('| model | batch | ' + ' | '.join(tags) + ' | PyTorch fp32 eager | PyTorch fp16 + CUDA graph |')
    print('|---|---|' + '---|' * (len(tags) + 2))
    for m, b in keys:
        cells = [f"{tab[(m, b, t)]['gpuMs']['p50']:.3f}" if (m, b, t) in tab else '–' for t in tags]
        bl = lambda v: f"{base[(m, b, v)]:.3f}" if (m, b, v) in base else '–'
        print(f"| {m} | {b} | " + ' | '.join(cells) + f" | {bl('fp32 eager')} | {bl('fp16 cuda-graph')} |")


def main():
    if sys.argv[1] == '--pivot':
        tags = sys.argv[4:] or ['fp32', 'fp16', 'fp32-cublaslt', 'fp16-cublaslt', 'fp32-autotune', 'fp16-autotune']
        return pivot(sys.argv[2], sys.argv[3], tags)
    rows = [json.loads(l) for l in open(sys.argv[1])]
    base = {}
    if len(sys.argv) > 2:
        for r in json.load(open(sys.argv[2]))['rows']:
            base[(r['model'], r['batch'], r['variant'])] = r['ms']
    print('| model | plan | batch | GPU ms p50 / p90 / p99 | items/s | host e2e ms p50 | layers gpu/cpu | CUDA graph | PyTorch fp32 eager ms | PyTorch fp16 eager ms | PyTorch fp16 + CUDA graph ms | issue target |')
    print('|---|---|---|---|---|---|---|---|---|---|---|---|')
    for r in rows:
        if r['kind'] != 'bench':
            continue
        res, tag = r['result'], r.get('tag', r.get('precision'))
        m, b = r['model'], r['batch']
        if isinstance(res, str):
            print(f'| {m} | {tag} | {b} | error: {res[:80]} | | | | | | | | |')
            continue
        g = res['gpuMs']
        prec = tag.split('-')[0]
        t = TARGETS.get((m, prec, b))
        target = ''
        if t:
            ok = g['p50'] <= t[1] if t[0] == 'latency_ms' else res['throughputPerSecond'] >= t[1]
            target = (f"≤ {t[1]} ms" if t[0] == 'latency_ms' else f"≥ {t[1]:,}/s") + (' **met**' if ok else ' not met')
        bl = lambda v: f"{base[(m, b, v)]:.3f}" if (m, b, v) in base else '–'
        print(f"| {m} | {tag} | {b} | {g['p50']:.3f} / {g['p90']:.3f} / {g['p99']:.3f} | {res['throughputPerSecond']:,.0f} | "
              f"{res['hostMs']['p50']:.3f} | {res['layers']['gpu']}/{res['layers']['cpu']} | {'yes' if res['cudaGraph'] else 'no'} | "
              f"{bl('fp32 eager')} | {bl('fp16 eager')} | {bl('fp16 cuda-graph')} | {target} |")


if __name__ == '__main__':
    main()
