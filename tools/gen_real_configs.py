#!/usr/bin/python3
"""Writes tests/fixtures/real-configs/: the configuration files of the models sembed's users
pick, with the values those models publish on the Hugging Face hub (config.json and the
sentence-transformers module files, transcribed field by field), and no weights.

    /usr/bin/python3 tools/gen_real_configs.py

tests/test_real_configs.py gives each folder a tokenizer from the other fixtures and a
zero-filled sparse checkpoint with exactly the tensors (names, shapes, dtype, file form) the
real model ships, then checks what `sembed info --json` says and that it encodes (or
reranks) at the real shape. The weights are what no one can have here; everything sembed
reads before them is real.

Each folder's manifest.json says which tokenizer and which checkpoint form the test gives
it, and what `sembed info` must report.
"""
import json
import os
import shutil

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "real-configs")

BERT_COMMON = {"attention_probs_dropout_prob": 0.1, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
               "initializer_range": 0.02, "layer_norm_eps": 1e-12, "max_position_embeddings": 512,
               "model_type": "bert", "pad_token_id": 0, "position_embedding_type": "absolute",
               "type_vocab_size": 2, "use_cache": True}
XLMR_COMMON = {"attention_probs_dropout_prob": 0.1, "bos_token_id": 0, "classifier_dropout": None,
               "eos_token_id": 2, "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "initializer_range": 0.02,
               "layer_norm_eps": 1e-05, "max_position_embeddings": 514, "model_type": "xlm-roberta",
               "output_past": True, "pad_token_id": 1, "position_embedding_type": "absolute",
               "type_vocab_size": 1, "use_cache": True, "vocab_size": 250002}


def cfg(common, **kw):
    c = dict(common)
    c.update(kw)
    return dict(sorted(c.items()))


def st_modules(normalize):
    m = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
         {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    if normalize:
        m.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
    return m


def pooling(dim, mode):
    return {"word_embedding_dimension": dim, "pooling_mode_cls_token": mode == "cls",
            "pooling_mode_mean_tokens": mode == "mean", "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False, "pooling_mode_weightedmean_tokens": False,
            "pooling_mode_lasttoken": False, "include_prompt": True}


MODELS = {
    # name: (config.json, sentence-transformers files or None, manifest)
    "all-mpnet-base-v2": (
        {"_name_or_path": "microsoft/mpnet-base", "architectures": ["MPNetForMaskedLM"],
         "attention_probs_dropout_prob": 0.1, "bos_token_id": 0, "eos_token_id": 2, "hidden_act": "gelu",
         "hidden_dropout_prob": 0.1, "hidden_size": 768, "initializer_range": 0.02, "intermediate_size": 3072,
         "layer_norm_eps": 1e-05, "max_position_embeddings": 514, "model_type": "mpnet",
         "num_attention_heads": 12, "num_hidden_layers": 12, "pad_token_id": 1,
         "relative_attention_num_buckets": 32, "transformers_version": "4.8.2", "vocab_size": 30527},
        {"max_seq_length": 384, "pooling": "mean", "normalize": True},
        {"tokenizer": "mpnet", "checkpoint": "safetensors", "prefix": "", "layout": "mpnet", "pooler": True,
         "expect": {"arch": "mpnet", "max_seq_length": 384, "dimension": 768, "pooling": "mean", "normalize": True}}),
    "paraphrase-multilingual-MiniLM-L12-v2": (
        cfg(BERT_COMMON, _name_or_path="old_models/paraphrase-multilingual-MiniLM-L12-v2/0_Transformer",
            architectures=["BertModel"], gradient_checkpointing=False, hidden_size=384, intermediate_size=1536,
            num_attention_heads=12, num_hidden_layers=12, transformers_version="4.7.0", vocab_size=250037),
        {"max_seq_length": 128, "pooling": "mean", "normalize": False},
        {"tokenizer": "xlmr", "checkpoint": "safetensors", "prefix": "", "layout": "bert", "pooler": True,
         "expect": {"arch": "bert", "max_seq_length": 128, "dimension": 384, "pooling": "mean", "normalize": False}}),
    "multilingual-e5-small": (
        cfg(BERT_COMMON, architectures=["BertModel"], hidden_size=384, intermediate_size=1536, num_attention_heads=12,
            num_hidden_layers=12, tokenizer_class="XLMRobertaTokenizer", torch_dtype="float32",
            transformers_version="4.29.0.dev0", vocab_size=250037),
        {"max_seq_length": 512, "pooling": "mean", "normalize": True},
        {"tokenizer": "xlmr", "checkpoint": "safetensors", "prefix": "", "layout": "bert", "pooler": True,
         "expect": {"arch": "bert", "max_seq_length": 512, "dimension": 384, "pooling": "mean", "normalize": True}}),
    "multilingual-e5-base": (
        cfg(XLMR_COMMON, architectures=["XLMRobertaModel"], hidden_size=768, intermediate_size=3072,
            num_attention_heads=12, num_hidden_layers=12, torch_dtype="float32", transformers_version="4.29.0.dev0"),
        {"max_seq_length": 512, "pooling": "mean", "normalize": True},
        {"tokenizer": "xlmr", "checkpoint": "safetensors", "prefix": "", "layout": "bert", "pooler": True,
         "expect": {"arch": "xlm-roberta", "max_seq_length": 512, "dimension": 768, "pooling": "mean", "normalize": True}}),
    "multilingual-e5-large": (
        cfg(XLMR_COMMON, architectures=["XLMRobertaModel"], hidden_size=1024, intermediate_size=4096,
            num_attention_heads=16, num_hidden_layers=24, torch_dtype="float32", transformers_version="4.29.0.dev0"),
        {"max_seq_length": 512, "pooling": "mean", "normalize": True},
        {"tokenizer": "xlmr", "checkpoint": "safetensors", "prefix": "", "layout": "bert", "pooler": True,
         "expect": {"arch": "xlm-roberta", "max_seq_length": 512, "dimension": 1024, "pooling": "mean", "normalize": True}}),
    "bge-m3": (
        cfg(XLMR_COMMON, _name_or_path="", architectures=["XLMRobertaModel"], hidden_size=1024,
            intermediate_size=4096, max_position_embeddings=8194, num_attention_heads=16, num_hidden_layers=24,
            torch_dtype="float32", transformers_version="4.33.0"),
        {"max_seq_length": 8192, "pooling": "cls", "normalize": True},
        {"tokenizer": "xlmr", "checkpoint": "bin", "prefix": "", "layout": "bert", "pooler": True,
         "expect": {"arch": "xlm-roberta", "max_seq_length": 8192, "dimension": 1024, "pooling": "cls", "normalize": True}}),
    "paraphrase-multilingual-mpnet-base-v2": (
        cfg(XLMR_COMMON, _name_or_path="old_models/paraphrase-multilingual-mpnet-base-v2/0_Transformer",
            architectures=["XLMRobertaModel"], gradient_checkpointing=False, hidden_size=768,
            intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12, transformers_version="4.7.0"),
        {"max_seq_length": 128, "pooling": "mean", "normalize": False},
        {"tokenizer": "xlmr", "checkpoint": "safetensors", "prefix": "", "layout": "bert", "pooler": True,
         "expect": {"arch": "xlm-roberta", "max_seq_length": 128, "dimension": 768, "pooling": "mean", "normalize": False}}),
    "gte-large-zh": (
        cfg(BERT_COMMON, _name_or_path="", architectures=["BertModel"], directionality="bidi", hidden_size=1024,
            intermediate_size=4096, num_attention_heads=16, num_hidden_layers=24, pooler_fc_size=768,
            pooler_num_attention_heads=12, pooler_num_fc_layers=3, pooler_size_per_head=128,
            pooler_type="first_token_transform", torch_dtype="float32", transformers_version="4.29.1",
            vocab_size=21128),
        {"max_seq_length": 512, "pooling": "mean", "normalize": False},
        {"tokenizer": "bert-zh", "checkpoint": "bin", "prefix": "", "layout": "bert", "pooler": True,
         "expect": {"arch": "bert", "max_seq_length": 512, "dimension": 1024, "pooling": "mean", "normalize": False}}),
    "ms-marco-MiniLM-L6-v2": (
        cfg(BERT_COMMON, _name_or_path="cross-encoder/ms-marco-MiniLM-L-6-v2",
            architectures=["BertForSequenceClassification"], gradient_checkpointing=False, hidden_size=384,
            id2label={"0": "LABEL_0"}, intermediate_size=1536, label2id={"LABEL_0": 0}, num_attention_heads=12,
            num_hidden_layers=6, sentence_transformers={"activation_fn": "torch.nn.modules.activation.Sigmoid",
                                                        "version": "4.0.2"},
            torch_dtype="float32", transformers_version="4.51.3", vocab_size=30522),
        None,
        {"tokenizer": "bert-uncased", "checkpoint": "safetensors", "prefix": "bert.", "layout": "bert",
         "pooler": True, "head": "bert", "labels": 1,
         "expect": {"arch": "bert", "max_seq_length": 512, "cross_encoder": True}}),
    "bge-reranker-base": (
        cfg(XLMR_COMMON, _name_or_path="", architectures=["XLMRobertaForSequenceClassification"], hidden_size=768,
            id2label={"0": "LABEL_0"}, intermediate_size=3072, label2id={"LABEL_0": 0}, num_attention_heads=12,
            num_hidden_layers=12, torch_dtype="float32", transformers_version="4.30.0"),
        None,
        {"tokenizer": "xlmr", "checkpoint": "safetensors", "prefix": "roberta.", "layout": "bert", "pooler": False,
         "head": "xlmr", "labels": 1, "expect": {"arch": "xlm-roberta", "max_seq_length": 512, "cross_encoder": True}}),
    "bge-reranker-large": (
        cfg(XLMR_COMMON, _name_or_path="", architectures=["XLMRobertaForSequenceClassification"], hidden_size=1024,
            id2label={"0": "LABEL_0"}, intermediate_size=4096, label2id={"LABEL_0": 0}, num_attention_heads=16,
            num_hidden_layers=24, torch_dtype="float32", transformers_version="4.30.0"),
        None,
        {"tokenizer": "xlmr", "checkpoint": "safetensors", "prefix": "roberta.", "layout": "bert", "pooler": False,
         "head": "xlmr", "labels": 1, "expect": {"arch": "xlm-roberta", "max_seq_length": 512, "cross_encoder": True}}),
    "bge-reranker-v2-m3": (
        cfg(XLMR_COMMON, _name_or_path="", architectures=["XLMRobertaForSequenceClassification"], hidden_size=1024,
            id2label={"0": "LABEL_0"}, intermediate_size=4096, label2id={"LABEL_0": 0}, max_position_embeddings=8194,
            num_attention_heads=16, num_hidden_layers=24, torch_dtype="float32", transformers_version="4.38.1"),
        None,
        {"tokenizer": "xlmr", "checkpoint": "safetensors", "prefix": "roberta.", "layout": "bert", "pooler": False,
         "head": "xlmr", "labels": 1, "expect": {"arch": "xlm-roberta", "max_seq_length": 8192, "cross_encoder": True}}),
}


def main():
    if os.path.isdir(ROOT):
        shutil.rmtree(ROOT)
    os.makedirs(ROOT)
    for name, (config, st, manifest) in MODELS.items():
        d = os.path.join(ROOT, name)
        os.makedirs(d)

        def dump(rel, obj):
            p = os.path.join(d, rel)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "w") as f:
                json.dump(obj, f, indent=2, ensure_ascii=False)
                f.write("\n")

        dump("config.json", config)
        if st:
            dump("modules.json", st_modules(st["normalize"]))
            dump("sentence_bert_config.json", {"max_seq_length": st["max_seq_length"], "do_lower_case": False})
            dump("1_Pooling/config.json", pooling(config["hidden_size"], st["pooling"]))
        dump("manifest.json", manifest)
    print("wrote", len(MODELS), "folders under", os.path.normpath(ROOT))


if __name__ == "__main__":
    main()
