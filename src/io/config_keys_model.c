/* config_keys_model.c: the schema of the model-side keys: model loading, adapter (LoRA/QLoRA),
 * quantization, precision, memory and attention (axolotl-compat.md sections 2.1, 2.4, 2.5, 2.7,
 * 2.8, 2.9). The data and training keys are in config_keys_train.c. */
#include "io/config_schema.h"

#define SUP  CFG_SUPPORTED
#define NOT  CFG_NOT_YET
#define NOEF CFG_NO_EFFECT

#define H_TEXT_ONLY                                                                                \
    "Remove it: eft trains the Gemma 4 text backbone; multimodal training is not supported yet."
#define H_GPU_STACK "Remove it."

/* ---- choices ---- */

static const cfg_choice adapter_choices[] = {
    {"lora", SUP, NULL, NULL},
    {"qlora", SUP, NULL, NULL},
    {"llama-adapter", NOT, NULL, "use adapter: lora"},
    {NULL, 0, NULL, NULL},
};

static const cfg_choice bf16_choices[] = {
    {"auto", SUP, NULL, NULL},
    {"full", SUP, NULL, NULL},
    {NULL, 0, NULL, NULL},
};

static const cfg_choice auto_choices[] = {{"auto", SUP, NULL, NULL}, {NULL, 0, NULL, NULL}};

static const cfg_choice gc_choices[] = {
    {"offload", SUP, NULL, NULL},
    {"offload_disk", SUP, NULL, NULL},
    {NULL, 0, NULL, NULL},
};

static const cfg_choice offload_choices[] = {
    {"legacy", SUP, NULL, NULL},
    {"disk", SUP, NULL, NULL},
    {"hidden_states", SUP, NULL, NULL},
    {NULL, 0, NULL, NULL},
};

static const cfg_choice init_choices[] = {
    {"gaussian", SUP, NULL, NULL},
    {"*", NOT, NULL, "use true (Kaiming-uniform A, zero B) or gaussian"},
    {NULL, 0, NULL, NULL},
};

static const cfg_choice attn_choices[] = {
    {"eager", SUP, NULL, NULL},
    {"sdpa", SUP, NULL, NULL},
    {"flash_attention_2", SUP, NULL, NULL},
    {"flash_attention_3", SUP, NULL, NULL},
    {"flex_attention", SUP, NULL, NULL},
    {"xformers", SUP, NULL, NULL},
    {"sage", SUP, NULL, NULL},
    {"fp8", SUP, NULL, NULL},
    {"*/*", SUP, NULL, "a hub kernel path such as kernels-community/flash-attn3"},
    {NULL, 0, NULL, NULL},
};

static const cfg_choice large_head_choices[] = {
    {"sdpa", SUP, NULL, NULL},
    {"auto", SUP, NULL, NULL},
    {"triton_flash", SUP, NULL, NULL},
    {NULL, 0, NULL, NULL},
};

static const cfg_choice compile_mode_choices[] = {
    {"default", SUP, NULL, NULL},
    {"reduce-overhead", SUP, NULL, NULL},
    {"max-autotune", SUP, NULL, NULL},
    {NULL, 0, NULL, NULL},
};

static const cfg_choice grouped_backend_choices[] = {
    {"auto", SUP, NULL, NULL},     {"marlin", SUP, NULL, NULL}, {"cutlass", SUP, NULL, NULL},
    {"deepgemm", SUP, NULL, NULL}, {NULL, 0, NULL, NULL},
};

static const cfg_choice merge_choices[] = {
    {"memory_efficient", SUP, NULL, NULL},
    {"legacy", SUP, NULL, NULL},
    {NULL, 0, NULL, NULL},
};

/* ---- 2.1 model loading, plugins and kernels ---- */

static const cfg_key model_keys[] = {
    CFG_SUP(
        base_model, CFG_T_STR, NULL,
        "Weights to fine-tune: a local folder or a Hugging Face id found in the local HF cache.",
        .def_doc = "required"),
    CFG_SUP(base_model_config, CFG_T_STR, NULL, "Where config.json is read from.",
            .def_doc = "base_model"),
    CFG_SUP(tokenizer_config, CFG_T_STR, NULL, "Where the tokenizer is read from.",
            .def_doc = "base_model"),
    CFG_SUP(revision_of_model, CFG_T_STR, NULL,
            "Hub revision (branch, tag or commit) of base_model in the HF cache.",
            .def_doc = "main"),
    {.name = "model_revision",
     .type = CFG_T_STR,
     .status = SUP,
     .off = offsetof(eft_config, revision_of_model),
     .alias_of = "revision_of_model",
     .meaning = "Same as revision_of_model."},
    CFG_SUP(strict, CFG_T_BOOL, "false",
            "Unknown keys are an error instead of a warning (eft's meaning; Axolotl's is about "
            "CLI overrides)."),
    CFG_NOEFF(tokenizer_type, CFG_T_STR, "Python tokenizer class; eft reads tokenizer.json."),
    CFG_NOEFF(tokenizer_use_fast, CFG_T_BOOL, "Fast vs slow Python tokenizer."),
    CFG_NOEFF(tokenizer_legacy, CFG_T_BOOL, "Legacy Python tokenizer behaviour."),
    CFG_NOEFF(tokenizer_save_jinja_files, CFG_T_BOOL, "How the Python tokenizer saves templates."),
    CFG_NOTYET(tokenizer_use_mistral_common, CFG_T_BOOL, "Mistral tokenizer library.",
               "Remove it: eft reads the tokenizer.json of the checkpoint."),
    CFG_NOEFF(trust_remote_code, CFG_T_BOOL, "Run model code from the Hub (eft has its own)."),
    CFG_NOEFF(model_type, CFG_T_STR, "Python model class to load (AutoModelForCausalLM, ...)."),
    CFG_NOEFF(type_of_model, CFG_T_STR, "Same as model_type."),
    CFG_NOEFF(cls_model_config, CFG_T_STR, "Python config class to load."),
    CFG_NOTYET(model_config, CFG_T_ANY, "Overrides of the model's config.json.",
               "Remove it, or edit config.json of a local copy of the model.", .type_doc = "dict"),
    CFG_NOTYET(overrides_of_model_config, CFG_T_ANY, "Same as model_config.",
               "Remove it, or edit config.json of a local copy of the model.", .type_doc = "dict"),
    CFG_NOTYET(model_kwargs, CFG_T_ANY, "Extra from_pretrained arguments.", "Remove it.",
               .type_doc = "dict"),
    CFG_NOTYET(overrides_of_model_kwargs, CFG_T_ANY, "Same as model_kwargs.", "Remove it.",
               .type_doc = "dict"),
    CFG_NOTYET(processor_type, CFG_T_STR, "Multimodal processor class (vision/audio input).",
               H_TEXT_ONLY),
    CFG_NOTYET(processor_kwargs, CFG_T_ANY, "Arguments of the multimodal processor.", H_TEXT_ONLY,
               .type_doc = "dict"),
    CFG_NOEFF(freeze_mm_modules, CFG_T_BOOL,
              "Freeze vision/audio towers (eft never trains them: it loads the text backbone)."),
    CFG_NOTYET(unfrozen_parameters, CFG_T_STR_LIST, "Train only matching parameters (full FT).",
               "Remove it: eft trains all parameters (no adapter) or the adapter."),
    CFG_NOEFF(plugins, CFG_T_STR_LIST, "Axolotl Python plugins (CCE, Liger, kernels)."),
    CFG_NOEFF(use_kernels, CFG_T_BOOL, "HF hub kernels."),
    CFG_NOEFF(use_scattermoe, CFG_T_BOOL, "ScatterMoE expert kernels (eft has its own)."),
    CFG_NOEFF(use_sonicmoe, CFG_T_BOOL, "SonicMoE expert kernels."),
    CFG_NOEFF(expert_backend, CFG_T_STR, "Expert GEMM backend of the kernels plugin."),
    CFG_NOEFF(experts_implementation, CFG_T_STR, "transformers ExpertsInterface name."),
    CFG_NOEFF(torch_compile, CFG_T_BOOL_ENUM, "torch.compile the model.", .choices = auto_choices),
    CFG_NOEFF(torch_compile_backend, CFG_T_STR, "torch.compile backend."),
    CFG_NOEFF(torch_compile_mode, CFG_T_ENUM, "torch.compile mode.",
              .choices = compile_mode_choices),
    CFG_NOEFF(torch_compile_options, CFG_T_ANY, "Inductor flags.", .type_doc = "dict"),
    CFG_NOEFF(ddp_find_unused_parameters, CFG_T_BOOL, "PyTorch DDP flag."),
    CFG_NOEFF(gpu_memory_limit, CFG_T_ANY, "Placement cap at load time.", .type_doc = "int | str"),
    CFG_NOEFF(max_memory, CFG_T_ANY, "Placement caps at load time.", .type_doc = "dict"),
    CFG_NOEFF(low_cpu_mem_usage, CFG_T_BOOL, "from_pretrained memory mode."),
    CFG_NOEFF(device_map, CFG_T_ANY, "Layer placement across devices.", .type_doc = "any"),
    CFG_NOEFF(device, CFG_T_ANY, "Torch device.", .type_doc = "any"),
    CFG_NOEFF(experimental_skip_move_to_device, CFG_T_BOOL, "Loader detail."),
    CFG_NOTYET(model_quantization_config, CFG_T_STR,
               "Load-time quantization class (Mxfp4Config, FineGrainedFP8Config).",
               "Remove it; eft quantizes with load_in_4bit (NF4)."),
    CFG_NOTYET(model_quantization_config_kwargs, CFG_T_ANY, "Its arguments.", "Remove it.",
               .type_doc = "dict"),
    CFG_NOTYET(use_onebitllms, CFG_T_BOOL, "1-bit LLM models.", "Remove it."),
    CFG_NOTYET(trainer_cls, CFG_T_STR, "Custom Python trainer class.", "Remove it."),
    CFG_NOTYET(resize_token_embeddings_to_32x, CFG_T_BOOL,
               "Pad the vocabulary to a multiple of 32.", "Remove it."),
    CFG_NOTYET(mean_resizing_embeddings, CFG_T_BOOL, "Initialise new embeddings to the mean.",
               "Remove it."),
    CFG_NOTYET(shrink_embeddings, CFG_T_BOOL, "Shrink the vocabulary to the tokenizer.",
               "Remove it."),
    CFG_NOTYET(embeddings_skip_upcast, CFG_T_BOOL, "Keep embeddings in half precision.",
               "Remove it."),
    CFG_NOTYET(reinit_weights, CFG_T_BOOL, "Randomly re-initialise the model.", "Remove it."),
    CFG_NOTYET(rope_scaling, CFG_T_ANY, "Deprecated RoPE scaling override.",
               "Remove it; Gemma 4's RoPE comes from config.json.", .type_doc = "any"),
    CFG_NOEFF(llama4_linearized_experts, CFG_T_BOOL, "Llama 4 only."),
};

/* ---- 2.4 adapter ---- */

static const cfg_key adapter_keys[] = {
    CFG_SUP(adapter, CFG_T_ENUM, NULL, "lora or qlora; empty trains every parameter.",
            .choices = adapter_choices, .def_doc = "none (full fine-tune)"),
    CFG_SUP(lora_r, CFG_T_INT, NULL, "LoRA rank r.", .def_doc = "required with an adapter",
            .flags = CFG_F_POSITIVE),
    CFG_SUP(lora_alpha, CFG_T_INT, NULL,
            "LoRA scale numerator: scale = alpha/r (alpha/sqrt(r) "
            "with rsLoRA).",
            .def_doc = "required with an adapter", .flags = CFG_F_POSITIVE),
    CFG_SUP(lora_dropout, CFG_T_FLOAT, "0.0", "Dropout on the LoRA input, in [0, 1)."),
    CFG_SUP(lora_target_modules, CFG_T_STR_OR_LIST, NULL,
            "Linear layers to wrap: one regex full-matched against module paths, or a list of "
            "name suffixes."),
    CFG_SUP(lora_target_parameters, CFG_T_STR_OR_LIST, NULL,
            "3-D parameters to wrap (MoE experts: experts.gate_up_proj, experts.down_proj)."),
    CFG_SUP(lora_target_linear, CFG_T_BOOL, "false",
            "Wrap every linear layer of the text backbone (except lm_head)."),
    CFG_SUP(lora_rank_pattern, CFG_T_MAP, NULL, "Per-module rank: regex -> r."),
    CFG_SUP(lora_alpha_pattern, CFG_T_MAP, NULL, "Per-module alpha: regex -> alpha."),
    CFG_SUP(lora_model_dir, CFG_T_STR, NULL,
            "A saved adapter to continue from (its adapter_config.json gives r and alpha)."),
    CFG_SUP(peft_use_rslora, CFG_T_BOOL, "false", "rsLoRA scaling alpha/sqrt(r)."),
    CFG_SUP(peft_init_lora_weights, CFG_T_BOOL_ENUM, "true",
            "LoRA init: true (Kaiming-uniform A, zero B) or gaussian.", .choices = init_choices),
    CFG_SUP(peft_autocast_adapter_dtype, CFG_T_BOOL, "true", "Keep adapter weights in fp32."),
    CFG_NOTYET(lora_fan_in_fan_out, CFG_T_BOOL, "Weights stored [in, out] (GPT-2 Conv1D).",
               "Remove it: Gemma 4 linears are [out, in]."),
    CFG_NOTYET(lora_modules_to_save, CFG_T_STR_LIST, "Modules trained fully and saved whole.",
               "Remove it; eft trains only the LoRA matrices."),
    CFG_NOEFF(lora_on_cpu, CFG_T_BOOL, "Load the adapter on CPU."),
    CFG_NOTYET(peft_use_dora, CFG_T_BOOL, "DoRA (weight-decomposed LoRA).",
               "Remove it or set it to false; eft trains plain LoRA."),
    CFG_NOTYET(peft_layers_to_transform, CFG_T_ANY, "Only these layer indices get LoRA.",
               "Remove it, and restrict layers with a lora_target_modules regex "
               "(layers.(0|1|2).).",
               .type_doc = "list[int]"),
    CFG_NOTYET(peft_layers_pattern, CFG_T_STR_LIST, "Layer container name for the above.",
               "Remove it."),
    CFG_NOTYET(peft_layer_replication, CFG_T_ANY, "Layer replication.", "Remove it.",
               .type_doc = "list[[int, int]]"),
    CFG_NOTYET(peft_trainable_token_indices, CFG_T_ANY, "Train selected embedding rows.",
               "Remove it.", .type_doc = "list[int] | dict"),
    CFG_NOTYET(peft_ensure_weight_tying, CFG_T_BOOL, "Tie saved embedding copies.", "Remove it."),
    CFG_NOTYET(peft, CFG_T_ANY, "PEFT extras (loftq_config).", "Remove it.", .type_doc = "dict"),
    CFG_NOEFF(qlora_sharded_model_loading, CFG_T_BOOL, "FSDP QLoRA loading."),
    CFG_NOEFF(merge_lora, CFG_T_BOOL, "Set by `axolotl merge-lora`; use `eft merge-lora`."),
    CFG_NOEFF(merge_method, CFG_T_ENUM,
              "Axolotl merge strategy; eft always merges shard by "
              "shard.",
              .choices = merge_choices),
    CFG_NOTYET(loraplus_lr_ratio, CFG_T_FLOAT, "LoRA+ learning rate ratio of B to A.",
               "Remove it."),
    CFG_NOTYET(loraplus_lr_embedding, CFG_T_FLOAT, "LoRA+ embedding learning rate.", "Remove it."),
    CFG_NOTYET(relora, CFG_T_BOOL, "ReLoRA restarts.", "Remove it."),
    CFG_NOTYET(relora_prune_ratio, CFG_T_FLOAT, "ReLoRA.", "Remove it."),
    CFG_NOTYET(relora_prune_method, CFG_T_STR, "ReLoRA.", "Remove it."),
    CFG_NOTYET(relora_cpu_offload, CFG_T_BOOL, "ReLoRA.", "Remove it."),
    CFG_NOTYET(jagged_restart_steps, CFG_T_INT, "ReLoRA / jagged LR restarts.", "Remove it."),
    CFG_NOTYET(jagged_restart_warmup_steps, CFG_T_INT, "Jagged LR restarts.", "Remove it."),
    CFG_NOTYET(jagged_restart_anneal_steps, CFG_T_INT, "Jagged LR restarts.", "Remove it."),
    CFG_NOTYET(lisa_n_layers, CFG_T_INT, "LISA layer sampling.", "Remove it."),
    CFG_NOTYET(lisa_step_interval, CFG_T_INT, "LISA layer sampling.", "Remove it."),
    CFG_NOTYET(lisa_layers_attribute, CFG_T_STR, "LISA layer sampling.", "Remove it."),
    CFG_NOEFF(lora_mlp_kernel, CFG_T_BOOL, "Fused LoRA MLP Triton kernel (eft fuses its own)."),
    CFG_NOEFF(lora_qkv_kernel, CFG_T_BOOL, "Fused LoRA QKV kernel."),
    CFG_NOEFF(lora_o_kernel, CFG_T_BOOL, "Fused LoRA O kernel."),
    CFG_NOEFF(lora_embedding_kernel, CFG_T_BOOL, "Fused LoRA embedding kernel."),
    CFG_NOEFF(fused_attn_kernel, CFG_T_BOOL, "Fused RMSNorm+RoPE Triton kernel."),
};

/* ---- 2.5 quantization ---- */

static const cfg_key quant_keys[] = {
    CFG_SUP(load_in_4bit, CFG_T_BOOL, "false",
            "Quantize the frozen base to NF4 (QLoRA), as bitsandbytes does."),
    CFG_SUP(bnb_config_kwargs, CFG_T_MAP, NULL,
            "NF4 settings merged over the defaults (bnb_4bit_use_double_quant: true, "
            "bnb_4bit_quant_type: nf4, bnb_4bit_compute_dtype: bfloat16, which rounds the "
            "dequantised weights to bf16; float32 keeps them exact)."),
    CFG_SUP(quantize_moe_experts, CFG_T_BOOL, "false",
            "Quantize the 3-D MoE expert tensors to NF4 too (needs an adapter and load_in_4bit)."),
    CFG_NOTYET(load_in_8bit, CFG_T_BOOL, "LLM.int8 base.",
               "Remove it or set it to false; use load_in_4bit: true with adapter: qlora."),
    CFG_NOTYET(gptq, CFG_T_BOOL, "GPTQ-quantized base.", "Remove it; use load_in_4bit: true."),
    CFG_NOTYET(qat, CFG_T_ANY, "Quantization-aware training (torchao).", "Remove it.",
               .type_doc = "dict"),
    CFG_NOTYET(quantization, CFG_T_ANY, "Post-training quantization settings.", "Remove it.",
               .type_doc = "dict"),
    CFG_NOTYET(nonexpert_quantization, CFG_T_STR,
               "Quantization of non-expert linears of NVFP4 "
               "checkpoints.",
               "Remove it; NVFP4 checkpoints are not supported yet."),
    CFG_NOTYET(gemma4_nf4_nonexpert, CFG_T_BOOL, "Old spelling of nonexpert_quantization: nf4.",
               "Remove it; NVFP4 checkpoints are not supported yet."),
    CFG_NOTYET(gemma4_fp8_nonexpert, CFG_T_BOOL, "Old spelling of nonexpert_quantization.",
               "Remove it; NVFP4 checkpoints are not supported yet."),
    CFG_NOTYET(dsv4_fp4_grouped_mode, CFG_T_STR, "Grouped fp4 expert GEMM for NVFP4 checkpoints.",
               "Remove it; NVFP4 checkpoints are not supported yet: train from the bf16 "
               "checkpoint with load_in_4bit: true and quantize_moe_experts: true."),
    CFG_NOTYET(nvfp4_merge_aware, CFG_T_BOOL, "Merge-aware NVFP4 training.",
               "Remove it; NVFP4 checkpoints are not supported yet."),
    CFG_NOTYET(nvfp4_merge_aware_start_step, CFG_T_ANY, "Merge-aware NVFP4 training.",
               "Remove it; NVFP4 checkpoints are not supported yet.", .type_doc = "int | float"),
    CFG_NOEFF(moe_grouped_backend, CFG_T_ENUM, "NVFP4 grouped GEMM backend.",
              .choices = grouped_backend_choices),
    CFG_NOEFF(moe_bnb_fast, CFG_T_BOOL, "ScatterMoE path for bnb experts (eft has its own)."),
    CFG_NOEFF(moe_dequant_chunk_size, CFG_T_INT, "Experts per dequant chunk (PyTorch path)."),
    CFG_NOEFF(use_dsv4_kernels, CFG_T_BOOL, "DeepSeek-V4 kernels."),
    CFG_NOEFF(use_glm_dsa_kernels, CFG_T_BOOL, "GLM kernels."),
    CFG_NOEFF(dsv4_fp8_nonexpert_mode, CFG_T_STR, "DeepSeek-V4 kernels."),
    CFG_NOEFF(dsv4_fp8_lora_kernel, CFG_T_BOOL, "DeepSeek-V4 kernels."),
    CFG_NOEFF(dsv4_shared_mlp_lora_kernel, CFG_T_BOOL, "DeepSeek-V4 kernels."),
    CFG_NOEFF(dsv4_bf16_all, CFG_T_BOOL, "DeepSeek-V4 kernels."),
};

/* ---- 2.7 precision ---- */

static const cfg_key precision_keys[] = {
    CFG_SUP(bf16, CFG_T_BOOL_ENUM, "auto",
            "bf16 compute: auto (when the device has it), true, false, or full (eval in bf16 too).",
            .choices = bf16_choices),
    CFG_NOEFF(tf32, CFG_T_BOOL_ENUM, "TF32 matmuls in PyTorch.", .choices = auto_choices),
    CFG_NOTYET(fp16, CFG_T_BOOL, "fp16 mixed precision.", "Remove it; use bf16."),
    CFG_NOTYET(bfloat16, CFG_T_BOOL, "Pure bf16 weights, no mixed precision.",
               "Remove it; use bf16."),
    CFG_NOTYET(float16, CFG_T_BOOL, "Pure fp16 weights.", "Remove it; use bf16."),
    CFG_NOTYET(float32, CFG_T_BOOL, "Pure fp32 weights.", "Remove it; use bf16: false."),
    CFG_NOTYET(fp8, CFG_T_BOOL, "FP8 training (torchao).", "Remove it; use bf16."),
    CFG_NOTYET(fp8_enable_fsdp_float8_all_gather, CFG_T_BOOL, "FP8 with FSDP.", "Remove it."),
    CFG_NOEFF(fp32_norms, CFG_T_BOOL, "fp32 norms under FSDP2 (eft's norms are always fp32)."),
    CFG_NOEFF(fp32_norm_classes, CFG_T_STR_LIST, "Classes for fp32_norms."),
};

/* ---- 2.8 memory ---- */

static const cfg_key memory_keys[] = {
    CFG_SUP(gradient_checkpointing, CFG_T_BOOL_ENUM, "false",
            "Recompute layer activations in backward; offload / offload_disk keep checkpoints "
            "off the device.",
            .choices = gc_choices),
    CFG_SUP(activation_offloading, CFG_T_BOOL_ENUM, "false",
            "Keep saved activations in host memory: true, legacy, disk or hidden_states.",
            .choices = offload_choices),
    CFG_NOEFF(gradient_checkpointing_kwargs, CFG_T_ANY, "torch.utils.checkpoint arguments.",
              .type_doc = "dict"),
    CFG_NOTYET(selective_checkpointing, CFG_T_ANY, "Save chosen ops inside checkpointed layers.",
               "Remove it; use gradient_checkpointing.", .type_doc = "bool | dict"),
    CFG_NOTYET(layer_offloading, CFG_T_BOOL, "Stream frozen layers from host memory.",
               "Remove it; use load_in_4bit to save memory."),
    CFG_NOTYET(tiled_mlp, CFG_T_BOOL, "ALST tiled MLP.", "Remove it."),
    CFG_NOTYET(tiled_mlp_num_shards, CFG_T_INT, "ALST tiled MLP.", "Remove it."),
    CFG_NOTYET(tiled_mlp_use_original_mlp, CFG_T_BOOL, "ALST tiled MLP.", "Remove it."),
    CFG_NOEFF(cut_cross_entropy, CFG_T_BOOL,
              "Cut Cross Entropy (eft's loss never forms the full logits anyway)."),
    CFG_NOEFF(chunked_cross_entropy, CFG_T_BOOL, "Chunked CE (eft's loss is fused)."),
    CFG_NOEFF(chunked_cross_entropy_num_chunks, CFG_T_INT, "Chunks of the above."),
    CFG_NOEFF(liger_rms_norm, CFG_T_BOOL, "Liger RMSNorm kernel."),
    CFG_NOEFF(liger_glu_activation, CFG_T_BOOL, "Liger GEGLU kernel."),
    CFG_NOEFF(liger_layer_norm, CFG_T_BOOL, "Liger LayerNorm kernel."),
    CFG_NOEFF(liger_rope, CFG_T_BOOL, "Liger RoPE kernel."),
    CFG_NOEFF(liger_rms_norm_gated, CFG_T_BOOL, "Liger gated RMSNorm kernel."),
    CFG_NOEFF(liger_swiglu, CFG_T_BOOL, "Liger SwiGLU kernel."),
    CFG_NOEFF(liger_cross_entropy, CFG_T_BOOL, "Liger CE kernel."),
    CFG_NOEFF(liger_fused_linear_cross_entropy, CFG_T_BOOL, "Liger fused linear CE."),
    CFG_NOEFF(liger_use_token_scaling, CFG_T_BOOL, "Liger CE token scaling."),
    CFG_NOEFF(torch_empty_cache_steps, CFG_T_INT, "Periodic CUDA cache flush."),
    CFG_NOEFF(gc_steps, CFG_T_INT, "Periodic Python GC."),
    CFG_NOEFF(gc_collect_steps, CFG_T_INT, "Periodic Python GC."),
    CFG_NOTYET(use_eaft, CFG_T_BOOL, "Entropy-adaptive fine-tuning loss.", "Remove it."),
    CFG_NOTYET(eaft_alpha, CFG_T_FLOAT, "EAFT.", "Remove it."),
    CFG_NOTYET(eaft_k, CFG_T_INT, "EAFT.", "Remove it."),
    CFG_NOTYET(scaling_softmax, CFG_T_BOOL, "Scaled softmax attention.", "Remove it."),
    CFG_NOTYET(scaling_softmax_factor, CFG_T_FLOAT, "Scaled softmax attention.", "Remove it."),
    CFG_NOTYET(scaling_softmax_bias, CFG_T_FLOAT, "Scaled softmax attention.", "Remove it."),
};

/* ---- 2.9 attention ---- */

static const cfg_key attention_keys[] = {
    CFG_NOEFF(attn_implementation, CFG_T_ENUM,
              "PyTorch attention backend (eft's attention handles windows, head_dim 512 and "
              "packing itself).",
              .choices = attn_choices),
    CFG_NOEFF(gemma4_hybrid_attn_impl, CFG_T_BOOL, "FA2 on sliding layers, SDPA on globals."),
    CFG_NOEFF(large_head_attention, CFG_T_ENUM, "Routing for head_dim > 256.",
              .choices = large_head_choices),
    CFG_NOEFF(flash_attn_d512, CFG_T_BOOL, "Old spelling of large_head_attention."),
    CFG_NOEFF(sdpa_varlen, CFG_T_BOOL, "Packed SDPA through varlen_attn."),
    CFG_NOEFF(flex_attn_compile_kwargs, CFG_T_ANY, "flex_attention compile options.",
              .type_doc = "dict"),
    CFG_NOEFF(flash_attention, CFG_T_BOOL, "Legacy spelling of flash_attention_2."),
    CFG_NOEFF(sdp_attention, CFG_T_BOOL, "Legacy spelling of sdpa."),
    CFG_NOEFF(flex_attention, CFG_T_BOOL, "Legacy spelling of flex_attention."),
    CFG_NOEFF(xformers_attention, CFG_T_BOOL, "Legacy spelling of xformers."),
    CFG_NOEFF(sage_attention, CFG_T_BOOL, "Legacy spelling of sage."),
    CFG_NOEFF(eager_attention, CFG_T_BOOL, "Legacy spelling of eager."),
    CFG_NOEFF(flash_attn_cross_entropy, CFG_T_BOOL, "flash-attn CE kernel."),
    CFG_NOEFF(flash_attn_fuse_mlp, CFG_T_BOOL, "flash-attn fused MLP."),
    CFG_NOEFF(flash_attn_rms_norm, CFG_T_BOOL, "flash-attn RMSNorm."),
    CFG_NOEFF(flash_optimum, CFG_T_BOOL, "BetterTransformer attention."),
    CFG_NOTYET(s2_attention, CFG_T_BOOL, "Shifted sparse attention (LongLoRA).", "Remove it."),
};

#define G(id, title, keys)                                                                         \
    { id, title, keys, (int)EFT_ARRAY_LEN(keys) }

const cfg_group cfg_model_groups[] = {
    G("model", "Model loading, plugins and kernels", model_keys),
    G("adapter", "Adapter (LoRA / QLoRA)", adapter_keys),
    G("quantization", "Quantization", quant_keys),
    G("precision", "Precision", precision_keys),
    G("memory", "Memory management", memory_keys),
    G("attention", "Attention", attention_keys),
};
const int cfg_n_model_groups = (int)EFT_ARRAY_LEN(cfg_model_groups);
