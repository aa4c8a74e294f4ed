// Host build of the CUDA-free headers added by whisper-steady patches 0001-0003, 0008, 0009, 0014,
// 0015 and 0020, exposed as a small C API so that Rust tests can drive them without a GPU. Not part of the
// public API.

#include "vmm-ledger.h"
#include "pool-policy.h"
#include "pool-stats.h"
#include "legacy-pool.h"
#include "vmm-mappings.h"
#include "pool-trim.h"
#include "pool-grow.h"

#include <chrono>
#include <cstdlib>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <new>
#include <vector>

extern "C" {

// ---- patch 0001: the VMM pool ledger ----

void * ws_ledger_new(void) {
    return new (std::nothrow) ggml_cuda_vmm_ledger();
}

void ws_ledger_drop(void * ledger) {
    delete static_cast<ggml_cuda_vmm_ledger *>(ledger);
}

size_t ws_ledger_alloc(void * ledger, size_t size) {
    return static_cast<ggml_cuda_vmm_ledger *>(ledger)->alloc(size);
}

int ws_ledger_free(void * ledger, size_t offset, size_t size) {
    return static_cast<ggml_cuda_vmm_ledger *>(ledger)->free(offset, size);
}

size_t ws_ledger_place(const void * ledger, size_t size) {
    return static_cast<const ggml_cuda_vmm_ledger *>(ledger)->place(size);
}

size_t ws_ledger_holes(const void * ledger) {
    return static_cast<const ggml_cuda_vmm_ledger *>(ledger)->holes();
}

int ws_ledger_log_rejected(uint64_t n_rejected) {
    return ggml_cuda_vmm_log_rejected(n_rejected) ? 1 : 0;
}

size_t ws_ledger_used(const void * ledger) {
    return static_cast<const ggml_cuda_vmm_ledger *>(ledger)->used;
}

size_t ws_ledger_waiting(const void * ledger) {
    return static_cast<const ggml_cuda_vmm_ledger *>(ledger)->waiting;
}

size_t ws_ledger_live_bytes(const void * ledger) {
    return static_cast<const ggml_cuda_vmm_ledger *>(ledger)->live_bytes();
}

size_t ws_ledger_blocks(const void * ledger) {
    return static_cast<const ggml_cuda_vmm_ledger *>(ledger)->blocks.size();
}

uint64_t ws_ledger_out_of_order(const void * ledger) {
    return static_cast<const ggml_cuda_vmm_ledger *>(ledger)->n_out_of_order;
}

uint64_t ws_ledger_rejected(const void * ledger) {
    return static_cast<const ggml_cuda_vmm_ledger *>(ledger)->n_rejected;
}

// ---- patch 0002: the pool policy ----

int ws_parse_env_bool(const char * value) {
    return ggml_cuda_parse_env_bool(value);
}

// Returns 1 for the legacy pool, 0 otherwise; *reason gets the deciding name or NULL.
int ws_pool_decide(int policy, int force_legacy, int use_vmm, const char ** reason) {
    const ggml_cuda_pool_choice choice = ggml_cuda_pool_decide(
        policy, (ggml_cuda_env_bool) force_legacy, (ggml_cuda_env_bool) use_vmm);
    *reason = choice.reason;
    return choice.legacy ? 1 : 0;
}

// ---- patch 0003: the pool counters ----

struct ws_counters_snapshot {
    int64_t  pools_vmm;
    int64_t  pools_legacy;
    int64_t  bytes_reserved;
    int64_t  bytes_in_use;
    int64_t  peak_bytes_in_use;
    int64_t  bytes_waiting_reclaim;
    uint64_t out_of_order_frees;
    uint64_t rejected_frees;
    uint64_t rejected_unknown;
    uint64_t rejected_size_mismatch;
    uint64_t rejected_double;
};

void * ws_counters_new(void) {
    return new (std::nothrow) ggml_cuda_pool_counters();
}

void ws_counters_drop(void * counters) {
    delete static_cast<ggml_cuda_pool_counters *>(counters);
}

void ws_counters_pool(void * counters, int vmm, int created) {
    auto * c = static_cast<ggml_cuda_pool_counters *>(counters);
    if (created) {
        c->pool_created(vmm != 0);
    } else {
        c->pool_destroyed(vmm != 0);
    }
}

void ws_counters_reserved(void * counters, int64_t delta) {
    static_cast<ggml_cuda_pool_counters *>(counters)->reserved(delta);
}

void ws_counters_in_use(void * counters, int64_t delta) {
    static_cast<ggml_cuda_pool_counters *>(counters)->in_use(delta);
}

void ws_counters_waiting(void * counters, int64_t delta) {
    static_cast<ggml_cuda_pool_counters *>(counters)->waiting(delta);
}

void ws_counters_out_of_order(void * counters) {
    static_cast<ggml_cuda_pool_counters *>(counters)->out_of_order();
}

// kind: 0 unknown, 1 size mismatch, 2 double free (patch 0010)
void ws_counters_rejected(void * counters, int kind) {
    static_cast<ggml_cuda_pool_counters *>(counters)->rejected((ggml_cuda_pool_reject_kind) kind);
}

void ws_counters_snapshot(const void * counters, ws_counters_snapshot * out) {
    const auto * c = static_cast<const ggml_cuda_pool_counters *>(counters);
    out->pools_vmm             = c->pools_vmm.load();
    out->pools_legacy          = c->pools_legacy.load();
    out->bytes_reserved        = c->bytes_reserved.load();
    out->bytes_in_use          = c->bytes_in_use.load();
    out->peak_bytes_in_use     = c->peak_bytes_in_use.load();
    out->bytes_waiting_reclaim = c->bytes_waiting_reclaim.load();
    out->out_of_order_frees    = c->out_of_order_frees.load();
    // patch 0015: the kinds before the total, as ggml_backend_cuda_get_pool_stats reads them
    c->read_rejected(&out->rejected_frees, &out->rejected_unknown, &out->rejected_size_mismatch, &out->rejected_double);
}

// ---- patch 0008: the legacy pool's bookkeeping, with malloc as the device ----

void * ws_legacy_new(void) {
    return new (std::nothrow) ggml_cuda_legacy_book();
}

void ws_legacy_drop(void * book) {
    auto * b = static_cast<ggml_cuda_legacy_book *>(book);
    b->drain([](void * ptr, size_t) { std::free(ptr); });
    delete b;
}

// Returns the buffer (null if malloc failed); *fresh is 1 when it came from the "device".
void * ws_legacy_alloc(void * book, size_t size, size_t * actual_size, int * fresh) {
    bool is_fresh = false;
    void * ptr = static_cast<ggml_cuda_legacy_book *>(book)->alloc(size, actual_size, &is_fresh,
        [](size_t bytes) { return std::malloc(bytes); });
    *fresh = is_fresh ? 1 : 0;
    return ptr;
}

// Returns 1 when the buffer was cached, 0 when it went back to the "device".
int ws_legacy_free(void * book, void * ptr, size_t size) {
    return static_cast<ggml_cuda_legacy_book *>(book)->free(ptr, size,
        [](void * p, size_t) { std::free(p); }) ? 1 : 0;
}

size_t ws_legacy_drain(void * book) {
    return static_cast<ggml_cuda_legacy_book *>(book)->drain([](void * p, size_t) { std::free(p); });
}

size_t ws_legacy_pool_size(void * book) {
    auto * b = static_cast<ggml_cuda_legacy_book *>(book);
    std::lock_guard<std::mutex> lock(b->mutex);
    return b->pool_size;
}

size_t ws_legacy_cached_bytes(void * book) {
    auto * b = static_cast<ggml_cuda_legacy_book *>(book);
    std::lock_guard<std::mutex> lock(b->mutex);
    return b->cached_bytes;
}

// ---- patch 0009: the chunks a VMM pool has mapped, and what a trim releases ----

void * ws_mappings_new(void) {
    return new (std::nothrow) ggml_cuda_vmm_mappings();
}

void ws_mappings_drop(void * mappings) {
    delete static_cast<ggml_cuda_vmm_mappings *>(mappings);
}

void ws_mappings_add(void * mappings, size_t bytes) {
    static_cast<ggml_cuda_vmm_mappings *>(mappings)->add(bytes);
}

size_t ws_mappings_mapped(const void * mappings) {
    return static_cast<const ggml_cuda_vmm_mappings *>(mappings)->mapped();
}

// Releases the chunks at or above `used`; writes up to `capacity` (offset, size) pairs, highest
// first, into `out` and returns how many chunks were released.
size_t ws_mappings_release_above(void * mappings, size_t used, size_t * out, size_t capacity) {
    const auto released = static_cast<ggml_cuda_vmm_mappings *>(mappings)->release_above(used);
    for (size_t i = 0; i < released.size() && i < capacity; ++i) {
        out[2 * i]     = released[i].first;
        out[2 * i + 1] = released[i].second;
    }
    return released.size();
}

// ---- patch 0014: trims that wait for the pool's streams ----

typedef int (*ws_fence_fn)(void * user);
typedef int (*ws_unmap_fn)(void * user, size_t offset, size_t size);
typedef int (*ws_device_free_fn)(void * user, void * ptr, size_t size);

int ws_trim_refused_for_graphs(int graphs_compiled, const char * disable_env) {
    return ggml_cuda_trim_refused_for_graphs(graphs_compiled != 0, disable_env) ? 1 : 0;
}

// The VMM pool's trim of `mappings` with the highest block in use ending at `used`; returns the
// bytes released and writes the status (ggml_cuda_trim_status).
size_t ws_mappings_trim(void * mappings, size_t used, ws_fence_fn fence, ws_unmap_fn unmap, void * user, int * status) {
    const ggml_cuda_trim_outcome outcome = ggml_cuda_vmm_trim(*static_cast<ggml_cuda_vmm_mappings *>(mappings), used,
        [&]() { return fence(user) != 0; },
        [&](size_t offset, size_t size) { return unmap(user, offset, size) != 0; });
    *status = outcome.status;
    return outcome.released;
}

// The legacy pool's trim: `device_free` decides whether the "driver" takes the buffer back; when
// it does, the buffer (from malloc) is freed.
size_t ws_legacy_trim(void * book, ws_fence_fn fence, ws_device_free_fn device_free, void * user, int * status) {
    const ggml_cuda_trim_outcome outcome = ggml_cuda_legacy_trim(*static_cast<ggml_cuda_legacy_book *>(book),
        [&]() { return fence(user) != 0; },
        [&](void * ptr, size_t size) {
            if (device_free(user, ptr, size) == 0) {
                return false;
            }
            std::free(ptr);
            return true;
        });
    *status = outcome.status;
    return outcome.released;
}

// ---- patches 0014, 0015: a VMM pool's host-side books, as ggml_cuda_pool_vmm keeps them ----
//
// The ledger, the mapped chunks and the out-of-order flag behind one mutex, with its own
// counters; mapped memory grows by whole granules at the end, as the pool's alloc does. Frees go
// through ggml_cuda_vmm_pool_free (the pool's exact sequence: books and counters under the
// mutex, the log callback after it), trims through ggml_cuda_vmm_trim under the mutex.

typedef void (*ws_vmm_log_fn)(void * user, int result, int outside, uint64_t n_rejected);

struct ws_vmm_pool {
    std::mutex              mutex;
    ggml_cuda_vmm_ledger    ledger;
    ggml_cuda_vmm_mappings  mapped;
    bool                    warned = false;
    size_t                  granule = 0;
    ggml_cuda_pool_counters counters;
    ws_vmm_log_fn           log = nullptr;
    void *                  log_user = nullptr;
};

// ggml_cuda_pool_vmm::CUDA_POOL_VMM_MAX_SIZE and its alignment
static const size_t WS_VMM_MAX_SIZE  = 1ull << 35;
static const size_t WS_VMM_ALIGNMENT = 128;

int ws_vmm_round_request(size_t size, size_t * rounded) {
    return ggml_cuda_vmm_round_request(size, WS_VMM_ALIGNMENT, WS_VMM_MAX_SIZE, rounded) ? 1 : 0;
}

void * ws_vmm_pool_new(size_t granule, ws_vmm_log_fn log, void * log_user) {
    ws_vmm_pool * pool = new (std::nothrow) ws_vmm_pool();
    if (pool != nullptr) {
        pool->granule  = granule;
        pool->log      = log;
        pool->log_user = log_user;
    }
    return pool;
}

void ws_vmm_pool_drop(void * pool) {
    delete static_cast<ws_vmm_pool *>(pool);
}

// Returns the block's offset and writes its rounded size, or SIZE_MAX for a request beyond the
// pool's address range.
size_t ws_vmm_pool_alloc(void * pool, size_t size, size_t * actual) {
    auto * p = static_cast<ws_vmm_pool *>(pool);
    size_t rounded = 0;
    if (!ggml_cuda_vmm_round_request(size, WS_VMM_ALIGNMENT, WS_VMM_MAX_SIZE, &rounded)) {
        return SIZE_MAX;
    }
    std::lock_guard<std::mutex> lock(p->mutex);
    const size_t end = p->ledger.place(rounded) + rounded;
    if (end > p->mapped.mapped()) {
        p->mapped.add(p->granule * ((end - p->mapped.mapped() + p->granule - 1) / p->granule));
    }
    const size_t waiting_before = p->ledger.waiting;
    const size_t offset = p->ledger.alloc(rounded);
    p->counters.in_use((int64_t) rounded);
    p->counters.waiting((int64_t) p->ledger.waiting - (int64_t) waiting_before);
    *actual = rounded;
    return offset;
}

// `inside` 0: a pointer outside the pool. Returns the ledger's verdict.
int ws_vmm_pool_free(void * pool, size_t offset, size_t size, int inside) {
    auto * p = static_cast<ws_vmm_pool *>(pool);
    const ggml_cuda_vmm_free_event ev = ggml_cuda_vmm_pool_free(p->mutex, p->ledger, p->warned, size,
        [&](size_t * off) {
            *off = offset;
            return inside != 0;
        },
        [&](const ggml_cuda_vmm_free_event & e) { p->counters.vmm_free(e); },
        [&](const ggml_cuda_vmm_free_event & e) {
            if (p->log != nullptr) {
                p->log(p->log_user, e.result, e.outside ? 1 : 0, e.n_rejected);
            }
        });
    return ev.result;
}

size_t ws_vmm_pool_trim(void * pool, ws_fence_fn fence, ws_unmap_fn unmap, void * user, int * status) {
    auto * p = static_cast<ws_vmm_pool *>(pool);
    std::lock_guard<std::mutex> lock(p->mutex);
    const ggml_cuda_trim_outcome outcome = ggml_cuda_vmm_trim(p->mapped, p->ledger.used,
        [&]() { return fence(user) != 0; },
        [&](size_t offset, size_t size) { return unmap(user, offset, size) != 0; });
    p->counters.reserved(-(int64_t) outcome.released);
    *status = outcome.status;
    return outcome.released;
}

size_t ws_vmm_pool_mapped(void * pool) {
    auto * p = static_cast<ws_vmm_pool *>(pool);
    std::lock_guard<std::mutex> lock(p->mutex);
    return p->mapped.mapped();
}

size_t ws_vmm_pool_used(void * pool) {
    auto * p = static_cast<ws_vmm_pool *>(pool);
    std::lock_guard<std::mutex> lock(p->mutex);
    return p->ledger.used;
}

void ws_vmm_pool_counters(void * pool, struct ws_counters_snapshot * out) {
    ws_counters_snapshot(&static_cast<ws_vmm_pool *>(pool)->counters, out);
}

// ---- patch 0015: the registry of pools that a trim visits (pools are opaque addresses) ----

typedef void (*ws_visit_fn)(void * user, void * pool);

void * ws_registry_new(void) {
    return new (std::nothrow) ggml_cuda_pool_registry<void>();
}

void ws_registry_drop(void * registry) {
    delete static_cast<ggml_cuda_pool_registry<void> *>(registry);
}

void ws_registry_add(void * registry, void * pool) {
    static_cast<ggml_cuda_pool_registry<void> *>(registry)->add(pool);
}

void ws_registry_remove(void * registry, void * pool) {
    static_cast<ggml_cuda_pool_registry<void> *>(registry)->remove(pool);
}

size_t ws_registry_size(void * registry) {
    return static_cast<ggml_cuda_pool_registry<void> *>(registry)->size();
}

size_t ws_registry_for_each(void * registry, ws_visit_fn visit, void * user) {
    return static_cast<ggml_cuda_pool_registry<void> *>(registry)->for_each([&](void * pool) { visit(user, pool); });
}

// ---- the pool microbenchmark (bench/steady-bench pool) ----
//
// Nanoseconds per alloc/free pair of the host-side bookkeeping, in C++ like the pool itself.
// impl 0: upstream's VMM bookkeeping (`pool_used += size`; free: `pool_used -= size` and the
//         assertion's comparison), which only survives LIFO frees;
// impl 1: patch 0001's ledger behind the pool's mutex, as ggml_cuda_pool_vmm now runs it.
// workload 0: LIFO: `depth` blocks allocated, then freed newest first, repeated;
// workload 1: out of order: `depth` blocks alive, each step frees a pseudo-random one and
//             allocates a new one (impl 1 only: upstream aborts on the first such free).
// Returns ns per pair, or -1 for an impossible combination.
double ws_pool_bench(int impl, int workload, int depth, uint64_t pairs, uint64_t seed) {
    if (depth <= 0 || pairs == 0 || (impl == 0 && workload != 0)) {
        return -1.0;
    }
    uint64_t rng = seed != 0 ? seed : 0x9E3779B97F4A7C15ull;
    auto next = [&rng]() {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        return rng;
    };
    std::vector<size_t> sizes(1024);
    for (size_t & s : sizes) {
        s = 128 * (1 + next() % 4096); // 128 B .. 512 KiB, aligned as the pool rounds them
    }
    volatile size_t sink = 0;
    uint64_t done = 0;
    const auto start = std::chrono::steady_clock::now();
    if (impl == 0) {
        size_t pool_used = 0;
        std::vector<std::pair<size_t, size_t>> stack;
        stack.reserve(depth);
        while (done < pairs) {
            for (int i = 0; i < depth; i++) {
                const size_t size = sizes[(done + i) & 1023];
                stack.push_back({pool_used, size});
                pool_used += size;
            }
            for (int i = 0; i < depth; i++) {
                const auto [ptr, size] = stack.back();
                stack.pop_back();
                pool_used -= size;
                if (ptr != pool_used) { // GGML_ASSERT(ptr == pool_addr + pool_used)
                    return -1.0;
                }
            }
            done += depth;
        }
        sink = sink + pool_used;
    } else {
        ggml_cuda_vmm_ledger ledger;
        std::mutex mutex;
        std::vector<std::pair<size_t, size_t>> live;
        live.reserve(depth);
        auto alloc = [&](size_t size) {
            std::lock_guard<std::mutex> lock(mutex);
            live.push_back({ledger.alloc(size), size});
        };
        auto free_at = [&](size_t i) {
            std::lock_guard<std::mutex> lock(mutex);
            sink = sink + (size_t) ledger.free(live[i].first, live[i].second);
        };
        if (workload == 0) {
            while (done < pairs) {
                for (int i = 0; i < depth; i++) {
                    alloc(sizes[(done + i) & 1023]);
                }
                for (int i = depth - 1; i >= 0; i--) {
                    free_at((size_t) i);
                    live.pop_back();
                }
                done += depth;
            }
        } else {
            for (int i = 0; i < depth; i++) {
                alloc(sizes[i & 1023]);
            }
            while (done < pairs) {
                const size_t i = (size_t) (next() % live.size());
                free_at(i);
                live[i] = live.back();
                live.pop_back();
                alloc(sizes[done & 1023]);
                done++;
            }
        }
        sink = sink + ledger.used;
    }
    const auto ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count();
    return ns / (double) done;
}

// ---- patch 0020: growth that makes room ----

typedef int (*ws_grow_fn)(void * user);  // a ggml_cuda_grow_status
typedef void (*ws_room_fn)(void * user);

// The pool's lock, alone: a test holds it, or asks from another thread whether it is held.
void * ws_grow_lock_new(void) {
    return new (std::nothrow) std::mutex();
}

void ws_grow_lock_drop(void * lock) {
    delete static_cast<std::mutex *>(lock);
}

// 1 while another thread holds the lock (never call it from the thread that may hold it).
int ws_grow_lock_held(void * lock) {
    auto * m = static_cast<std::mutex *>(lock);
    if (m->try_lock()) {
        m->unlock();
        return 0;
    }
    return 1;
}

// ggml_cuda_pool_grow with the lock taken here, `grow` and `room` as the pool's steps.
int ws_pool_grow(void * lock, ws_grow_fn grow, ws_room_fn room, void * user) {
    std::unique_lock<std::mutex> held(*static_cast<std::mutex *>(lock));
    return ggml_cuda_pool_grow(held,
        [&]() { return (ggml_cuda_grow_status) grow(user); },
        [&]() { room(user); });
}

size_t ws_pool_cap_parse(const char * value) {
    return ggml_cuda_pool_cap_parse(value);
}

}

