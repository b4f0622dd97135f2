//! The flag structs' defaults, written once: each `Default` is what clap gives the struct when
//! none of its flags is passed, so a default lives only in its `#[arg(default_value_t = ...)]`.

/// `T` as clap builds it from no flags at all (the defaults it declares). A struct whose flags
/// cannot all be absent is a programming error, reported as clap reports a usage error.
pub fn flag_defaults<T: clap::Args + clap::FromArgMatches>() -> T {
    let matches = T::augment_args(clap::Command::new("defaults")).get_matches_from(["defaults"]);
    T::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}
