// ocm-go-interop speaks to ocm-rs through OCM's own Go CloudEvents transports
// (open-cluster-management.io/sdk-go): over gRPC to our broker
// (pkg/cloudevents/generic/options/grpc/protocol), or, with -mqtt-config, over an MQTT broker
// as an OCM agent (pkg/cloudevents/generic/options/mqtt, reading OCM's MQTT config file). Either
// way it subscribes for one cluster, publishes one work status event, then prints the first
// spec event it receives as structured CloudEvents JSON and exits.
//
// The Rust tests transport/tests/grpc_transport.rs and mqtt_mosquitto.rs build and drive it.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	ceprotocol "github.com/cloudevents/sdk-go/v2/protocol"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/generic/options/grpc/protocol"
)

const manifestBundles = "io.open-cluster-management.works.v1alpha1.manifestbundles"

func main() {
	addr := flag.String("addr", "", "broker host:port")
	caFile := flag.String("ca", "", "CA bundle")
	certFile := flag.String("cert", "", "client certificate")
	keyFile := flag.String("key", "", "client key")
	cluster := flag.String("cluster", "cluster1", "cluster name")
	mqttConfig := flag.String("mqtt-config", "", "OCM MQTT config file: speak MQTT as an agent instead of gRPC")
	flag.Parse()
	var err error
	if *mqttConfig != "" {
		err = runMQTT(*mqttConfig, *cluster)
	} else {
		err = run(*addr, *caFile, *certFile, *keyFile, *cluster)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func run(addr, caFile, certFile, keyFile, cluster string) error {
	ca, err := os.ReadFile(caFile)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return err
	}
	// As OCM's Go clients: TLS 1.3 only.
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS13, MaxVersion: tls.VersionTLS13, RootCAs: pool,
		Certificates: []tls.Certificate{cert}, ServerName: "localhost"}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(tlsConfig)))
	if err != nil {
		return err
	}
	p, err := protocol.NewProtocol(conn, protocol.WithSubscribeOption(&protocol.SubscribeOption{
		ClusterName: cluster, DataType: manifestBundles}))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	go func() {
		if err := p.OpenInbound(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "subscribe:", err)
		}
	}()

	status, err := statusEvent(cluster)
	if err != nil {
		return err
	}
	return exchange(ctx, ctx, p, status)
}

// exchange publishes status (with sendCtx, which may name a topic), then prints the first
// event received.
func exchange(ctx, sendCtx context.Context, p senderReceiver, status cloudevents.Event) error {
	if err := p.Send(sendCtx, binding.ToMessage(&status)); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	fmt.Fprintln(os.Stderr, "published")

	msg, err := p.Receive(ctx)
	if err != nil {
		return fmt.Errorf("receive: %w", err)
	}
	return printEvent(ctx, msg)
}

type senderReceiver interface {
	ceprotocol.Sender
	ceprotocol.Receiver
}

// statusEvent is a work status update as OCM's work agent sends it.
func statusEvent(cluster string) (cloudevents.Event, error) {
	status := cloudevents.NewEvent()
	status.SetID("go-status-1")
	status.SetSource(cluster + "-work-agent")
	status.SetType(manifestBundles + ".status.update_request")
	status.SetTime(time.Date(2025, 12, 16, 6, 0, 17, 923000000, time.UTC))
	status.SetExtension("clustername", cluster)
	status.SetExtension("originalsource", "kube")
	status.SetExtension("resourceid", "55c61e54-a3f6-563d-9fec-b1fe297bdfdb")
	status.SetExtension("resourceversion", 3)
	status.SetExtension("sequenceid", "2000808179729960960")
	status.SetExtension("deletiontimestamp", time.Date(2025, 12, 16, 6, 5, 0, 0, time.UTC))
	err := status.SetData(cloudevents.ApplicationJSON, map[string]interface{}{"conditions": []interface{}{}})
	return status, err
}

// printEvent prints a received event as structured JSON, with the Go type of each extension.
func printEvent(ctx context.Context, msg binding.Message) error {
	received, err := binding.ToEvent(ctx, msg)
	if err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	// Extension values with their Go types, which is what OCM's codecs look at.
	types := map[string]string{}
	for name, value := range received.Extensions() {
		types[name] = fmt.Sprintf("%T", value)
	}
	out, err := json.Marshal(map[string]interface{}{"event": received, "extensionTypes": types})
	if err != nil {
		return err
	}
	fmt.Println(string(out))
	return nil
}
