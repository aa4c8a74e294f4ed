//! Patch 0002: the run-time pool choice, through the host build of `pool-policy.h`.

use pool_host::{parse_env_bool, pool_decide, EnvBool};
use whisper_steady::cuda::PoolPolicy;

#[test]
fn environment_value_table() {
    let table: &[(Option<&str>, EnvBool)] = &[
        (None, EnvBool::Unset),
        (Some("1"), EnvBool::True),
        (Some("true"), EnvBool::True),
        (Some("TRUE"), EnvBool::True),
        (Some("True"), EnvBool::True),
        (Some("yes"), EnvBool::True),
        (Some("YeS"), EnvBool::True),
        (Some("on"), EnvBool::True),
        (Some("ON"), EnvBool::True),
        (Some(" on "), EnvBool::True),
        (Some("1\n"), EnvBool::True),
        (Some("0"), EnvBool::False),
        (Some("false"), EnvBool::False),
        (Some("FALSE"), EnvBool::False),
        (Some("no"), EnvBool::False),
        (Some("No"), EnvBool::False),
        (Some("off"), EnvBool::False),
        (Some("OFF"), EnvBool::False),
        (Some("\toff"), EnvBool::False),
        (Some(""), EnvBool::Invalid),
        (Some("   "), EnvBool::Invalid),
        (Some("2"), EnvBool::Invalid),
        (Some("-1"), EnvBool::Invalid),
        (Some("01"), EnvBool::Invalid),
        (Some("y"), EnvBool::Invalid),
        (Some("n"), EnvBool::Invalid),
        (Some("enable"), EnvBool::Invalid),
        (Some("truee"), EnvBool::Invalid),
        (Some("o n"), EnvBool::Invalid),
        (Some("yes please"), EnvBool::Invalid),
        (
            Some("a very long value that overflows any small buffer"),
            EnvBool::Invalid,
        ),
        (Some("tru\u{e9}"), EnvBool::Invalid),
        (Some("on\0"), EnvBool::Invalid),
    ];
    for (value, expected) in table {
        assert_eq!(parse_env_bool(*value), *expected, "value {value:?}");
    }
}

#[test]
fn precedence_api_then_force_legacy_then_use_vmm() {
    use EnvBool::*;
    let envs = [Unset, True, False, Invalid];
    for force in envs {
        for use_vmm in envs {
            // An explicit API choice beats the environment.
            assert_eq!(
                pool_decide(PoolPolicy::Legacy, force, use_vmm),
                (true, Some("ggml_backend_cuda_set_pool_policy"))
            );
            assert_eq!(pool_decide(PoolPolicy::Vmm, force, use_vmm), (false, None));

            // Auto: either variable can ask for the legacy pool; FORCE_LEGACY is named first.
            let expected = if force == True {
                (true, Some("GGML_CUDA_FORCE_LEGACY_POOL"))
            } else if use_vmm == False {
                (true, Some("GGML_USE_VMM"))
            } else {
                (false, None)
            };
            assert_eq!(
                pool_decide(PoolPolicy::Auto, force, use_vmm),
                expected,
                "force_legacy={force:?} use_vmm={use_vmm:?}"
            );
        }
    }
}

#[test]
fn the_start_script_settings_force_the_legacy_pool() {
    // The user's start script exports both GGML_CUDA_FORCE_LEGACY_POOL=1 and GGML_USE_VMM=0.
    let force = parse_env_bool(Some("1"));
    let use_vmm = parse_env_bool(Some("0"));
    assert_eq!(
        pool_decide(PoolPolicy::Auto, force, use_vmm),
        (true, Some("GGML_CUDA_FORCE_LEGACY_POOL"))
    );
    // An invalid value is ignored (treated as unset by the patched ggml-cuda after its warning).
    assert_eq!(parse_env_bool(Some("maybe")), EnvBool::Invalid);
    assert_eq!(
        pool_decide(PoolPolicy::Auto, EnvBool::Unset, EnvBool::Unset),
        (false, None)
    );
}

#[test]
fn rust_policy_round_trips() {
    for policy in [PoolPolicy::Legacy, PoolPolicy::Vmm, PoolPolicy::Auto] {
        whisper_steady::cuda::set_pool_policy(policy);
        assert_eq!(whisper_steady::cuda::pool_policy(), policy);
    }
}
