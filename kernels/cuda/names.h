/* names.h: the cuda_ prefix for every name that kernels.h declares (see kernels_cuda.h).
 *
 * Included with KC_NAMES_UNDEF undefined it maps each name to cuda_<name>; included again
 * with KC_NAMES_UNDEF defined it removes the mapping. No include guard: it is meant to be
 * included more than once. tests/gpu/check_names.sh fails when this list and kernels.h
 * disagree, so a new op cannot be forgotten here. */
#ifndef KC_NAMES_UNDEF
#define kernels_set_threads cuda_kernels_set_threads
#define kernels_get_threads cuda_kernels_get_threads
#define kernels_alloc cuda_kernels_alloc
#define kernels_free cuda_kernels_free
#define kernels_to_device cuda_kernels_to_device
#define kernels_to_host cuda_kernels_to_host
#define kernels_copy cuda_kernels_copy
#define kernels_zero cuda_kernels_zero
#define kernels_synchronize cuda_kernels_synchronize
#define ema_update cuda_ema_update
#define optim_table_create cuda_optim_table_create
#define optim_table_free cuda_optim_table_free
#define adam_step cuda_adam_step
#define sgd_step cuda_sgd_step
#define grad_clip_norm cuda_grad_clip_norm
#define linear_forward cuda_linear_forward
#define linear_backward cuda_linear_backward
#define relu_forward cuda_relu_forward
#define relu_backward cuda_relu_backward
#define conv2d_scratch_floats cuda_conv2d_scratch_floats
#define conv2d_forward cuda_conv2d_forward
#define conv2d_backward cuda_conv2d_backward
#define maxpool2x2_forward cuda_maxpool2x2_forward
#define maxpool2x2_backward cuda_maxpool2x2_backward
#define avgpool2x2_forward cuda_avgpool2x2_forward
#define avgpool2x2_backward cuda_avgpool2x2_backward
#define softmax_xent_forward cuda_softmax_xent_forward
#define softmax_xent_backward cuda_softmax_xent_backward
#define embedding_forward cuda_embedding_forward
#define embedding_backward cuda_embedding_backward
#define layernorm_forward cuda_layernorm_forward
#define layernorm_backward cuda_layernorm_backward
#define attention_forward cuda_attention_forward
#define attention_scratch_floats cuda_attention_scratch_floats
#define attention_backward cuda_attention_backward
#define gelu_forward cuda_gelu_forward
#define gelu_backward cuda_gelu_backward
#define residual_forward cuda_residual_forward
#define residual_backward cuda_residual_backward
#define groupnorm_forward cuda_groupnorm_forward
#define groupnorm_backward cuda_groupnorm_backward
#define silu_forward cuda_silu_forward
#define silu_backward cuda_silu_backward
#define upsample2x_forward cuda_upsample2x_forward
#define upsample2x_backward cuda_upsample2x_backward
#define concat_channels_forward cuda_concat_channels_forward
#define concat_channels_backward cuda_concat_channels_backward
#define add_channel_forward cuda_add_channel_forward
#define add_channel_backward cuda_add_channel_backward
#define transpose_chw_forward cuda_transpose_chw_forward
#define transpose_chw_backward cuda_transpose_chw_backward
#define attention_full_forward cuda_attention_full_forward
#define attention_full_backward cuda_attention_full_backward
#define mse_forward cuda_mse_forward
#define mse_backward cuda_mse_backward
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
