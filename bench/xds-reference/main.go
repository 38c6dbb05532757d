// xds-reference: the go-control-plane baseline for bench/scale. It serves the same simulated
// sidecars what our pilot serves them — per workload (namespace + dependencies, read from the
// Node's metadata as the pilot reads it): an EDS cluster per dependency (and one per subset when
// a route policy names subsets), its ClusterLoadAssignment, the `outbound` listener whose HTTP
// connection manager takes its routes over RDS, and the `outbound` route configuration with a
// virtual host per dependency — from go-control-plane's snapshot cache over ADS (SotW and delta,
// both from the library's server). A small HTTP API lets the bench load the mesh and change
// endpoints or a route policy; each change sets new snapshots on exactly the nodes whose
// workload depends on the changed service, with a new version only for the types that changed
// (EDS for endpoints, CDS+RDS for a policy), so a push here carries what a pilot push carries.
// Changes are coalesced for --debounce (100 ms, the pilot's default) before they are pushed.
//
// Usage: xds-reference --xds-port 0 --http-port 0 [--debounce 100ms]   (prints "ready xds=HOST:PORT http=HOST:PORT")
//
//	PUT    /services            {"services":[{"namespace","name","port","endpoints":[…]}]}
//	PUT    /endpoints/NS/NAME   [{"address","port","labels","locality":{"region","zone"},"healthy"}]
//	PUT    /policy/NS/NAME      {"subsets":[{"name","labels"}],"route":[{"subset","weight"}],"timeoutMs","retries","consecutive5xx","maxConnections"}
//	DELETE /policy/NS/NAME
//	GET    /stats               {"nodes","streams","groups","snapshotsSet"}
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	router "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// ---- the mesh, as the bench describes it --------------------------------------------------------

type Locality struct {
	Region string `json:"region"`
	Zone   string `json:"zone"`
}

type Endpoint struct {
	Address  string            `json:"address"`
	Port     uint32            `json:"port"`
	Labels   map[string]string `json:"labels"`
	Locality Locality          `json:"locality"`
	Healthy  bool              `json:"healthy"`
}

type Service struct {
	Namespace string     `json:"namespace"`
	Name      string     `json:"name"`
	Port      uint32     `json:"port"`
	Endpoints []Endpoint `json:"endpoints"`
}

type Subset struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels"`
}

type Weighted struct {
	Subset string `json:"subset"`
	Weight uint32 `json:"weight"`
}

// Policy is the part of a RoutePolicy the bench changes: subsets, one weighted rule, timeout,
// retries, outlier detection and a circuit breaker.
type Policy struct {
	Subsets        []Subset   `json:"subsets"`
	Route          []Weighted `json:"route"`
	TimeoutMs      int64      `json:"timeoutMs"`
	Retries        uint32     `json:"retries"`
	Consecutive5xx uint32     `json:"consecutive5xx"`
	MaxConnections uint32     `json:"maxConnections"`
}

// built is one service's translated resources, shared by every workload that depends on it.
type built struct {
	clusters  []types.Resource
	endpoints []types.Resource
	vhost     *route.VirtualHost
}

// group is a workload: the nodes with one namespace and one dependency list.
type group struct {
	namespace string
	deps      []string // service keys ns/name
	nodes     map[string]bool
	cdsVer    int64
	edsVer    int64
	rdsVer    int64
	res       [types.UnknownType]cachev3.Resources
}

// changes says which types of a service's resources changed since the last flush.
type changes struct{ cds, eds, rds bool }

type mesh struct {
	mu       sync.Mutex
	debounce time.Duration
	dirty    map[string]changes
	pending  bool
	services map[string]*Service
	policies map[string]*Policy
	built    map[string]*built
	groups   map[string]*group
	nodeOf   map[string]*group
	cache    cachev3.SnapshotCache
	setCount atomic.Int64
}

func key(ns, name string) string { return ns + "/" + name }

func host(k string) string {
	ns, name, _ := strings.Cut(k, "/")
	return name + "." + ns + ".svc"
}

// parseDependency resolves a dependency as the pilot does: "name" (the node's namespace),
// "ns/name", "name.ns" or "name.ns.svc[.cluster.local]".
func parseDependency(dep, ns string) string {
	d := strings.ToLower(strings.TrimSpace(dep))
	if strings.Contains(d, "/") {
		return d
	}
	d = strings.TrimSuffix(strings.TrimSuffix(d, ".cluster.local"), ".svc")
	parts := strings.Split(d, ".")
	if len(parts) == 1 {
		return key(ns, parts[0])
	}
	if len(parts) == 2 {
		return key(parts[1], parts[0])
	}
	return ""
}

var adsSource = &core.ConfigSource{
	ResourceApiVersion:    core.ApiVersion_V3,
	ConfigSourceSpecifier: &core.ConfigSource_Ads{Ads: &core.AggregatedConfigSource{}},
}

func clusterName(port uint32, subset, h string) string {
	return fmt.Sprintf("outbound|%d|%s|%s", port, subset, h)
}

func matches(labels, want map[string]string) bool {
	for k, v := range want {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func loadAssignment(name string, eps []Endpoint, want map[string]string) *endpoint.ClusterLoadAssignment {
	byLocality := map[Locality][]*endpoint.LbEndpoint{}
	var order []Locality
	for _, e := range eps {
		if !matches(e.Labels, want) {
			continue
		}
		health := core.HealthStatus_HEALTHY
		if !e.Healthy {
			health = core.HealthStatus_UNHEALTHY
		}
		fields := map[string]*structpb.Value{}
		for k, v := range e.Labels {
			fields[k] = structpb.NewStringValue(v)
		}
		lb := &endpoint.LbEndpoint{
			HostIdentifier: &endpoint.LbEndpoint_Endpoint{Endpoint: &endpoint.Endpoint{Address: &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
				Address: e.Address, PortSpecifier: &core.SocketAddress_PortValue{PortValue: e.Port},
			}}}}},
			HealthStatus: health,
			Metadata:     &core.Metadata{FilterMetadata: map[string]*structpb.Struct{"envoy.lb": {Fields: fields}}},
		}
		if _, ok := byLocality[e.Locality]; !ok {
			order = append(order, e.Locality)
		}
		byLocality[e.Locality] = append(byLocality[e.Locality], lb)
	}
	cla := &endpoint.ClusterLoadAssignment{ClusterName: name}
	for _, l := range order {
		cla.Endpoints = append(cla.Endpoints, &endpoint.LocalityLbEndpoints{
			Locality:            &core.Locality{Region: l.Region, Zone: l.Zone},
			LbEndpoints:         byLocality[l],
			LoadBalancingWeight: wrapperspb.UInt32(uint32(len(byLocality[l]))),
		})
	}
	return cla
}

func edsCluster(name string, p *Policy) *cluster.Cluster {
	c := &cluster.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_EDS},
		EdsClusterConfig:     &cluster.Cluster_EdsClusterConfig{EdsConfig: adsSource, ServiceName: name},
		ConnectTimeout:       durationpb.New(5 * time.Second),
		LbPolicy:             cluster.Cluster_ROUND_ROBIN,
	}
	if p != nil && p.Consecutive5xx > 0 {
		c.OutlierDetection = &cluster.OutlierDetection{
			Consecutive_5Xx:    wrapperspb.UInt32(p.Consecutive5xx),
			Interval:           durationpb.New(10 * time.Second),
			BaseEjectionTime:   durationpb.New(30 * time.Second),
			MaxEjectionPercent: wrapperspb.UInt32(10),
		}
	}
	if p != nil && p.MaxConnections > 0 {
		c.CircuitBreakers = &cluster.CircuitBreakers{Thresholds: []*cluster.CircuitBreakers_Thresholds{{MaxConnections: wrapperspb.UInt32(p.MaxConnections)}}}
	}
	return c
}

// build translates one service (and its policy) into what every dependent sidecar holds.
func (m *mesh) build(k string) *built {
	s := m.services[k]
	if s == nil {
		return nil
	}
	p := m.policies[k]
	h := host(k)
	main := clusterName(s.Port, "", h)
	b := &built{}
	b.clusters = append(b.clusters, edsCluster(main, p))
	b.endpoints = append(b.endpoints, loadAssignment(main, s.Endpoints, nil))
	action := &route.RouteAction{ClusterSpecifier: &route.RouteAction_Cluster{Cluster: main}}
	if p != nil {
		for _, sub := range p.Subsets {
			n := clusterName(s.Port, sub.Name, h)
			b.clusters = append(b.clusters, edsCluster(n, p))
			b.endpoints = append(b.endpoints, loadAssignment(n, s.Endpoints, sub.Labels))
		}
		if len(p.Route) > 0 {
			wc := &route.WeightedCluster{}
			for _, w := range p.Route {
				wc.Clusters = append(wc.Clusters, &route.WeightedCluster_ClusterWeight{Name: clusterName(s.Port, w.Subset, h), Weight: wrapperspb.UInt32(w.Weight)})
			}
			action = &route.RouteAction{ClusterSpecifier: &route.RouteAction_WeightedClusters{WeightedClusters: wc}}
		}
		if p.TimeoutMs > 0 {
			action.Timeout = durationpb.New(time.Duration(p.TimeoutMs) * time.Millisecond)
		}
		if p.Retries > 0 {
			action.RetryPolicy = &route.RetryPolicy{RetryOn: "5xx", NumRetries: wrapperspb.UInt32(p.Retries)}
		}
	}
	ns, name, _ := strings.Cut(k, "/")
	port := strconv.Itoa(int(s.Port))
	domains := []string{name, name + "." + ns, h, h + ".cluster.local"}
	for _, d := range domains[:4] {
		domains = append(domains, d+":"+port)
	}
	b.vhost = &route.VirtualHost{
		Name:    h + ":" + port,
		Domains: domains,
		Routes:  []*route.Route{{Match: &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}}, Action: &route.Route_Route{Route: action}}},
	}
	return b
}

func outboundListener() types.Resource {
	manager := &hcm.HttpConnectionManager{
		StatPrefix:     "outbound",
		RouteSpecifier: &hcm.HttpConnectionManager_Rds{Rds: &hcm.Rds{ConfigSource: adsSource, RouteConfigName: "outbound"}},
		HttpFilters:    []*hcm.HttpFilter{{Name: "envoy.filters.http.router", ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: mustAny(&router.Router{})}}},
	}
	return &listener.Listener{
		Name:    "outbound",
		Address: &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{Address: "0.0.0.0", PortSpecifier: &core.SocketAddress_PortValue{PortValue: 15001}}}},
		FilterChains: []*listener.FilterChain{{Filters: []*listener.Filter{{
			Name: "envoy.filters.network.http_connection_manager", ConfigType: &listener.Filter_TypedConfig{TypedConfig: mustAny(manager)},
		}}}},
	}
}

func mustAny(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		log.Fatalf("marshal %T: %v", m, err)
	}
	return a
}

var listenerRes = outboundListener()

// rebuild recomputes a group's resources for the types that changed and sets a snapshot on each of its nodes.
func (m *mesh) rebuild(g *group, cds, eds, rds bool) {
	v := func(n int64) string { return strconv.FormatInt(n, 10) }
	var cl, ep []types.Resource
	rc := &route.RouteConfiguration{Name: "outbound"}
	for _, d := range g.deps {
		b := m.built[d]
		if b == nil {
			continue
		}
		cl = append(cl, b.clusters...)
		ep = append(ep, b.endpoints...)
		rc.VirtualHosts = append(rc.VirtualHosts, b.vhost)
	}
	if cds {
		g.cdsVer++
		g.res[types.Cluster] = cachev3.NewResources(v(g.cdsVer), cl)
	}
	if eds {
		g.edsVer++
		g.res[types.Endpoint] = cachev3.NewResources(v(g.edsVer), ep)
	}
	if rds {
		g.rdsVer++
		g.res[types.Route] = cachev3.NewResources(v(g.rdsVer), []types.Resource{rc})
	}
	if g.res[types.Listener].Items == nil {
		g.res[types.Listener] = cachev3.NewResources("1", []types.Resource{listenerRes})
	}
	for n := range g.nodes {
		m.set(n, g)
	}
}

func (m *mesh) set(node string, g *group) {
	snap := &cachev3.Snapshot{Resources: g.res}
	if err := m.cache.SetSnapshot(context.Background(), node, snap); err != nil {
		log.Printf("set snapshot of %s: %v", node, err)
	}
	m.setCount.Add(1)
}

// changed records a change of a service (caller holds mu); the push follows after the debounce
// window (as the pilot's does), coalescing what changed meanwhile, or at once without one.
// It returns how many nodes depend on the service.
func (m *mesh) changed(k string, cds, eds, rds bool) int {
	c := m.dirty[k]
	m.dirty[k] = changes{c.cds || cds, c.eds || eds, c.rds || rds}
	nodes := 0
	for _, g := range m.groups {
		for _, d := range g.deps {
			if d == k {
				nodes += len(g.nodes)
				break
			}
		}
	}
	if m.debounce <= 0 {
		m.flushLocked()
	} else if !m.pending {
		m.pending = true
		time.AfterFunc(m.debounce, func() {
			m.mu.Lock()
			defer m.mu.Unlock()
			m.flushLocked()
		})
	}
	return nodes
}

// flushLocked rebuilds the changed services and sets new snapshots on the groups that depend on them.
func (m *mesh) flushLocked() {
	m.pending = false
	dirty := m.dirty
	m.dirty = map[string]changes{}
	for k := range dirty {
		m.built[k] = m.build(k)
	}
	for _, g := range m.groups {
		var c changes
		for _, d := range g.deps {
			if f, ok := dirty[d]; ok {
				c = changes{c.cds || f.cds, c.eds || f.eds, c.rds || f.rds}
			}
		}
		if c.cds || c.eds || c.rds {
			m.rebuild(g, c.cds, c.eds, c.rds)
		}
	}
}

// onNode places a node in its group on its first request (so its snapshot exists before the
// cache opens its watch).
func (m *mesh) onNode(n *core.Node) {
	if n == nil || n.Id == "" {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.nodeOf[n.Id]; ok {
		return
	}
	md := n.GetMetadata().GetFields()
	ns := md["namespace"].GetStringValue()
	if ns == "" {
		ns = n.Cluster
	}
	var deps []string
	for _, d := range md["dependencies"].GetListValue().GetValues() {
		if k := parseDependency(d.GetStringValue(), ns); k != "" {
			deps = append(deps, k)
		}
	}
	sort.Strings(deps)
	gk := ns + "|" + strings.Join(deps, ",")
	g := m.groups[gk]
	if g == nil {
		g = &group{namespace: ns, deps: deps, nodes: map[string]bool{}}
		m.groups[gk] = g
		m.rebuild(g, true, true, true)
	}
	g.nodes[n.Id] = true
	m.nodeOf[n.Id] = g
	m.set(n.Id, g)
}

// ---- HTTP control API ---------------------------------------------------------------------------

func (m *mesh) routes(streams *atomic.Int64) http.Handler {
	mux := http.NewServeMux()
	fail := func(w http.ResponseWriter, code int, format string, a ...any) {
		msg := fmt.Sprintf(format, a...)
		log.Print(msg)
		http.Error(w, msg, code)
	}
	decode := func(w http.ResponseWriter, r *http.Request, into any) bool {
		body, err := io.ReadAll(r.Body)
		if err == nil {
			err = json.Unmarshal(body, into)
		}
		if err != nil {
			fail(w, http.StatusBadRequest, "%s %s: bad body: %v", r.Method, r.URL.Path, err)
			return false
		}
		return true
	}
	reply := func(w http.ResponseWriter, v any) {
		w.Header().Set("content-type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { reply(w, map[string]bool{"ok": true}) })
	mux.HandleFunc("PUT /services", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Services []*Service `json:"services"`
		}
		if !decode(w, r, &in) {
			return
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		pushed := 0
		for i, s := range in.Services {
			if s.Namespace == "" || s.Name == "" || s.Port == 0 {
				fail(w, http.StatusBadRequest, "services[%d]: namespace, name and port are required", i)
				return
			}
			m.services[key(s.Namespace, s.Name)] = s
			pushed += m.changed(key(s.Namespace, s.Name), true, true, true)
		}
		reply(w, map[string]int{"services": len(m.services), "nodes": pushed})
	})
	mux.HandleFunc("PUT /endpoints/{ns}/{name}", func(w http.ResponseWriter, r *http.Request) {
		var eps []Endpoint
		if !decode(w, r, &eps) {
			return
		}
		k := key(r.PathValue("ns"), r.PathValue("name"))
		m.mu.Lock()
		defer m.mu.Unlock()
		s := m.services[k]
		if s == nil {
			fail(w, http.StatusNotFound, "endpoints: no service %s", k)
			return
		}
		s.Endpoints = eps
		reply(w, map[string]int{"nodes": m.changed(k, false, true, false)})
	})
	mux.HandleFunc("PUT /policy/{ns}/{name}", func(w http.ResponseWriter, r *http.Request) {
		var p Policy
		if !decode(w, r, &p) {
			return
		}
		k := key(r.PathValue("ns"), r.PathValue("name"))
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.services[k] == nil {
			fail(w, http.StatusNotFound, "policy: no service %s", k)
			return
		}
		old := m.policies[k]
		m.policies[k] = &p
		// New subsets add clusters and their endpoints; otherwise clusters and routes change.
		eds := old == nil || len(old.Subsets) != len(p.Subsets)
		reply(w, map[string]int{"nodes": m.changed(k, true, eds, true)})
	})
	mux.HandleFunc("DELETE /policy/{ns}/{name}", func(w http.ResponseWriter, r *http.Request) {
		k := key(r.PathValue("ns"), r.PathValue("name"))
		m.mu.Lock()
		defer m.mu.Unlock()
		delete(m.policies, k)
		reply(w, map[string]int{"nodes": m.changed(k, true, true, true)})
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
		m.mu.Lock()
		defer m.mu.Unlock()
		reply(w, map[string]int64{"nodes": int64(len(m.nodeOf)), "groups": int64(len(m.groups)), "streams": streams.Load(), "snapshotsSet": m.setCount.Load()})
	})
	return mux
}

func main() {
	xdsPort := flag.Int("xds-port", 0, "ADS gRPC port (0 = any free)")
	httpPort := flag.Int("http-port", 0, "control API port (0 = any free)")
	hostFlag := flag.String("host", "127.0.0.1", "address to listen on")
	debounce := flag.Duration("debounce", 100*time.Millisecond, "coalesce changes for this long before pushing (the pilot's default); 0 = push at once")
	flag.Parse()
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)

	m := &mesh{debounce: *debounce, dirty: map[string]changes{}, services: map[string]*Service{}, policies: map[string]*Policy{}, built: map[string]*built{}, groups: map[string]*group{}, nodeOf: map[string]*group{}}
	m.cache = cachev3.NewSnapshotCache(true, cachev3.IDHash{}, nil)
	var streams atomic.Int64
	callbacks := serverv3.CallbackFuncs{
		StreamOpenFunc:        func(context.Context, int64, string) error { streams.Add(1); return nil },
		StreamClosedFunc:      func(int64, *core.Node) { streams.Add(-1) },
		DeltaStreamOpenFunc:   func(context.Context, int64, string) error { streams.Add(1); return nil },
		DeltaStreamClosedFunc: func(int64, *core.Node) { streams.Add(-1) },
		StreamRequestFunc: func(_ int64, r *discovery.DiscoveryRequest) error {
			m.onNode(r.GetNode())
			return nil
		},
		StreamDeltaRequestFunc: func(_ int64, r *discovery.DeltaDiscoveryRequest) error {
			m.onNode(r.GetNode())
			return nil
		},
	}
	srv := serverv3.NewServer(context.Background(), m.cache, callbacks)
	g := grpc.NewServer(
		grpc.MaxConcurrentStreams(1<<20),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	)
	discovery.RegisterAggregatedDiscoveryServiceServer(g, srv)

	xl, err := net.Listen("tcp", net.JoinHostPort(*hostFlag, strconv.Itoa(*xdsPort)))
	if err != nil {
		log.Fatalf("listen xds: %v", err)
	}
	hl, err := net.Listen("tcp", net.JoinHostPort(*hostFlag, strconv.Itoa(*httpPort)))
	if err != nil {
		log.Fatalf("listen http: %v", err)
	}
	go func() {
		if err := http.Serve(hl, m.routes(&streams)); err != nil {
			log.Fatalf("http: %v", err)
		}
	}()
	fmt.Fprintf(os.Stdout, "ready xds=%s http=%s\n", xl.Addr(), hl.Addr())
	if err := g.Serve(xl); err != nil {
		log.Fatalf("grpc: %v", err)
	}
}
