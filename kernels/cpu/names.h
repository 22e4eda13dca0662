/* names.h: the cpu_ prefix for every name that kernels.h declares, the CPU backend's
 * counterpart of kernels/cuda/names.h.
 *
 * The CPU kernels are written with the plain names; cpu.h includes this file before
 * kernels.h, so what they define is cpu_linear_forward, cpu_kernels_alloc, and so on. The
 * plain names belong to kernels/dispatch.c, which sends each call to the backend the process
 * runs on (one branch per call; a CPU-only build has no branch at all). Included with
 * KC_NAMES_UNDEF undefined it maps each name to cpu_<name>; included again with
 * KC_NAMES_UNDEF defined it removes the mapping. No include guard: it is meant to be
 * included more than once. tests/gpu/check_names.sh fails when this list and kernels.h
 * disagree. */
#ifndef KC_NAMES_UNDEF
#define kernels_set_threads cpu_kernels_set_threads
#define kernels_get_threads cpu_kernels_get_threads
#define kernels_alloc cpu_kernels_alloc
#define kernels_free cpu_kernels_free
#define kernels_to_device cpu_kernels_to_device
#define kernels_to_host cpu_kernels_to_host
#define kernels_copy cpu_kernels_copy
#define kernels_zero cpu_kernels_zero
#define kernels_synchronize cpu_kernels_synchronize
#define ema_update cpu_ema_update
#define optim_table_create cpu_optim_table_create
#define optim_table_free cpu_optim_table_free
#define adam_step cpu_adam_step
#define sgd_step cpu_sgd_step
#define grad_clip_norm cpu_grad_clip_norm
#define linear_forward cpu_linear_forward
#define linear_backward cpu_linear_backward
#define relu_forward cpu_relu_forward
#define relu_backward cpu_relu_backward
#define conv2d_scratch_floats cpu_conv2d_scratch_floats
#define conv2d_forward cpu_conv2d_forward
#define conv2d_backward cpu_conv2d_backward
#define maxpool2x2_forward cpu_maxpool2x2_forward
#define maxpool2x2_backward cpu_maxpool2x2_backward
#define avgpool2x2_forward cpu_avgpool2x2_forward
#define avgpool2x2_backward cpu_avgpool2x2_backward
#define softmax_xent_forward cpu_softmax_xent_forward
#define softmax_xent_backward cpu_softmax_xent_backward
#define embedding_forward cpu_embedding_forward
#define embedding_backward cpu_embedding_backward
#define layernorm_forward cpu_layernorm_forward
#define layernorm_backward cpu_layernorm_backward
#define attention_forward cpu_attention_forward
#define attention_scratch_floats cpu_attention_scratch_floats
#define attention_backward cpu_attention_backward
#define gelu_forward cpu_gelu_forward
#define gelu_backward cpu_gelu_backward
#define residual_forward cpu_residual_forward
#define residual_backward cpu_residual_backward
#define groupnorm_forward cpu_groupnorm_forward
#define groupnorm_backward cpu_groupnorm_backward
#define silu_forward cpu_silu_forward
#define silu_backward cpu_silu_backward
#define upsample2x_forward cpu_upsample2x_forward
#define upsample2x_backward cpu_upsample2x_backward
#define concat_channels_forward cpu_concat_channels_forward
#define concat_channels_backward cpu_concat_channels_backward
#define add_channel_forward cpu_add_channel_forward
#define add_channel_backward cpu_add_channel_backward
#define transpose_chw_forward cpu_transpose_chw_forward
#define transpose_chw_backward cpu_transpose_chw_backward
#define attention_full_forward cpu_attention_full_forward
#define attention_full_backward cpu_attention_full_backward
#define mse_forward cpu_mse_forward
#define mse_backward cpu_mse_backward
#else
#undef kernels_set_threads
#undef kernels_get_threads
#undef kernels_alloc
#undef kernels_free
#undef kernels_to_device
#undef kernels_to_host
#undef kernels_copy
#undef kernels_zero
#undef kernels_synchronize
#undef ema_update
#undef optim_table_create
#undef optim_table_free
#undef adam_step
#undef sgd_step
#undef grad_clip_norm
#undef linear_forward
#undef linear_backward
#undef relu_forward
#undef relu_backward
#undef conv2d_scratch_floats
#undef conv2d_forward
#undef conv2d_backward
#undef maxpool2x2_forward
#undef maxpool2x2_backward
#undef avgpool2x2_forward
#undef avgpool2x2_backward
#undef softmax_xent_forward
#undef softmax_xent_backward
#undef embedding_forward
#undef embedding_backward
#undef layernorm_forward
#undef layernorm_backward
#undef attention_forward
#undef attention_scratch_floats
#undef attention_backward
#undef gelu_forward
#undef gelu_backward
#undef residual_forward
#undef residual_backward
#undef groupnorm_forward
#undef groupnorm_backward
#undef silu_forward
#undef silu_backward
#undef upsample2x_forward
#undef upsample2x_backward
#undef concat_channels_forward
#undef concat_channels_backward
#undef add_channel_forward
#undef add_channel_backward
#undef transpose_chw_forward
#undef transpose_chw_backward
#undef attention_full_forward
#undef attention_full_backward
#undef mse_forward
#undef mse_backward
#endif
