r"""What a name segment (`as NAME`, one piece of a dotted path) may hold.

A segment is any text PyTorch accepts as a module or parameter name: not empty, no `.`
(it separates segments), no control characters, no `"` or `\` (torch.fx writes a segment
that is not an identifier into generated code as `getattr(self, "seg")`, unescaped, so
these two could end the string: user text must never become code), and not an attribute that torch.nn.Module,
nn.Sequential or the fx GraphModule already has (`forward`, `graph`, `training`, ...):
add_module refuses those. So torchvision's RegNet names (`block1-0`) are names; they are
written quoted in a .res file: `as "block1-0"`.
"""
from __future__ import annotations

# attributes of torch.nn.Module / nn.Sequential / torch.fx.GraphModule (torch 2.x), listed here
# so that checking a name does not need torch
RESERVED = frozenset("""
    T_destination _apply _backward_hooks _backward_pre_hooks _boxed_call _buffers _call_impl
    _code _compiled_call_impl _create_node_hooks _deepcopy_hooks _deepcopy_init
    _erase_node_hooks _forward_hooks _forward_hooks_always_called _forward_hooks_with_kwargs
    _forward_pre_hooks _forward_pre_hooks_with_kwargs _get_backward_hooks
    _get_backward_pre_hooks _get_item_by_idx _get_name _graph _is_full_backward_hook _lineno_map
    _load_from_state_dict _load_state_dict_post_hooks _load_state_dict_pre_hooks
    _maybe_warn_non_full_backward_hook _modules _named_members _non_persistent_buffers_set
    _parameters _prologue_start _recompile_submodules _register_create_node_hook
    _register_deepcopy_hook _register_erase_node_hook _register_load_state_dict_pre_hook
    _register_replace_node_hook _register_state_dict_hook _replace_hooks
    _replicate_for_data_parallel _save_to_state_dict _set_replace_hook _slow_forward
    _state_dict_hooks _state_dict_pre_hooks _tracer_cls _tracer_extras
    _unregister_create_node_hook _unregister_deepcopy_hook _unregister_erase_node_hook
    _unregister_replace_node_hook _version _wrapped_call _wrapped_call_impl add_module
    add_submodule append apply bfloat16 buffers call_super_init children code compile cpu cuda
    delete_all_unused_submodules delete_submodule double dump_patches eval extend extra_repr
    float forward get_buffer get_extra_state get_parameter get_submodule graph half insert ipu
    load_state_dict meta modules mtia named_buffers named_children named_modules
    named_parameters parameters pop print_readable recompile register_backward_hook
    register_buffer register_forward_hook register_forward_pre_hook register_full_backward_hook
    register_full_backward_pre_hook register_load_state_dict_post_hook
    register_load_state_dict_pre_hook register_module register_parameter
    register_state_dict_post_hook register_state_dict_pre_hook requires_grad_ set_extra_state
    set_submodule shape_env share_memory state_dict to to_empty to_folder train training type
    xpu zero_grad
""".split())


def segment_problem(seg: str) -> str | None:
    """Why `seg` cannot be one segment of a parameter path, or None when it can."""
    if seg == "":
        return "has an empty segment"
    if not seg.isprintable():
        return "holds a control character"
    if '"' in seg or "\\" in seg:
        return "holds `\"` or `\\`"
    if seg in RESERVED:
        return f"uses `{seg}`, an attribute torch modules already have"
    return None
