package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/cloudevents/sdk-go/v2/protocol"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/generic/options/mqtt"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/generic/types"
)

// runMQTT is an OCM work agent's MQTT transport: options built from OCM's MQTT config file,
// the agent's topics, the agent's publish-topic derivation.
func runMQTT(configPath, cluster string) error {
	opts, err := mqtt.BuildMQTTOptionsFromFlags(configPath)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	agent := mqtt.NewAgentOptions(opts, cluster, cluster+"-work-agent")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dataType := types.CloudEventsDataType{
		Group: "io.open-cluster-management.works", Version: "v1alpha1", Resource: "manifestbundles"}
	p, err := agent.CloudEventsOptions.Protocol(ctx, dataType)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer p.Close(ctx)
	opener, ok := p.(protocol.Opener)
	if !ok {
		return fmt.Errorf("the MQTT protocol cannot subscribe")
	}
	go func() {
		if err := opener.OpenInbound(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "subscribe:", err)
		}
	}()

	status, err := statusEvent(cluster)
	if err != nil {
		return err
	}
	sendCtx, err := agent.CloudEventsOptions.WithContext(ctx, status.Context)
	if err != nil {
		return fmt.Errorf("topic: %w", err)
	}
	return exchange(ctx, sendCtx, p, status)
}
