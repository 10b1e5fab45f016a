//! A library built against an old plugin-api (0.0.1): the loader refuses it by version.
//!
//! It exports a root module under the name the gateway looks for, but not the gateway's.

#![allow(unsafe_code, non_camel_case_types, non_local_definitions)]

use abi_stable::{
    StableAbi, declare_root_module_statics, export_root_module, library::RootModule,
    prefix_type::PrefixTypeTrait, sabi_types::VersionStrings, std_types::RStr,
};

#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = OtherRoot_Ref)))]
#[sabi(missing_field(panic))]
pub struct OtherRoot {
    #[sabi(last_prefix_field)]
    pub greeting: RStr<'static>,
}

impl RootModule for OtherRoot_Ref {
    declare_root_module_statics! {OtherRoot_Ref}
    const BASE_NAME: &'static str = "openpsm_plugin";
    const NAME: &'static str = "openpsm plugin";
    const VERSION_STRINGS: VersionStrings = VersionStrings::new("0.0.1");
}

#[export_root_module]
pub fn root() -> OtherRoot_Ref {
    OtherRoot {
        greeting: RStr::from_str("hello"),
    }
    .leak_into_prefix()
}
